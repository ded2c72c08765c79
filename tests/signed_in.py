"""Signing in to the clinician app in tests: a user of the clinic, a real single-use sign-in
link redeemed over HTTP, and the session cookie it set, sent by hand (the cookie is Secure,
which the test client would not send over plain http)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from service.platform.sessions import SESSION_COOKIE
from service.web.users import SIGN_IN_LINK_PATH, Users

CSRF_INPUT = re.compile(r'name="_csrf" value="([^"]+)"')


@dataclass(frozen=True)
class SignedIn:
    client: TestClient[Litestar]
    session: str
    csrf: str
    user: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.session}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers, follow_redirects=False, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A form post with the session's CSRF token (unless ``data`` brings its own)."""
        form = {"_csrf": self.csrf, **(data or {})}
        return self.client.post(
            path, data=form, headers=self.headers, follow_redirects=False, **kwargs
        )


def session_from(response: Any) -> str:
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE + "="), cookie
    return cookie.split(";", 1)[0].split("=", 1)[1]


def sign_in(
    client: TestClient[Litestar], clinic: str, role: str = "clinician", name: str | None = None
) -> SignedIn:
    """A new user of ``clinic`` (or the one named), signed in through a sign-in link."""
    name = name or f"user-{uuid.uuid4().hex[:8]}"
    users = Users(client.app.state.db)

    async def link() -> str:
        await users.add(clinic, name, role, if_missing=True)
        return await users.link(clinic, name)

    token = client.blocking_portal.call(link)
    response = client.get(SIGN_IN_LINK_PATH + token, follow_redirects=False)
    assert response.status_code == 303, response.text
    session = session_from(response)
    account = client.get(
        "/app/account", headers={"Cookie": f"{SESSION_COOKIE}={session}"}, follow_redirects=False
    )
    assert account.status_code == 200, account.text
    found = CSRF_INPUT.search(account.text)
    assert found is not None
    return SignedIn(client, session, found.group(1), name)
