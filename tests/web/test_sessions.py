"""The clinician app's sign-in link, sessions, CSRF, roles and security headers, over HTTP
against the real app and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.platform.sessions import SESSION_COOKIE, hash_secret
from service.platform.tables import sessions, sign_in_links
from service.web.controllers import safe_next
from service.web.users import SIGN_IN_LINK_PATH, Users
from tests.conftest import Clinic
from tests.signed_in import session_from, sign_in


def run(client: TestClient[Litestar], statement: sa.Executable) -> None:
    async def execute() -> None:
        async with client.app.state.db.begin() as conn:
            await conn.execute(statement)

    client.blocking_portal.call(execute)


def new_link(client: TestClient[Litestar], clinic: str, name: str, minutes: int = 10) -> str:
    users = Users(client.app.state.db)

    async def link() -> str:
        await users.add(clinic, name, "clinician", if_missing=True)
        return await users.link(clinic, name, minutes=minutes)

    return client.blocking_portal.call(link)


def test_a_page_without_a_session_sends_the_browser_to_sign_in(
    session_client: TestClient[Litestar],
) -> None:
    response = session_client.get("/app/account?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/app/sign-in?next=%2Fapp%2Faccount%3Fx%3D1"
    page = session_client.get(response.headers["location"])
    assert page.status_code == 200
    assert "Sign in to Belong" in page.text


def test_a_sign_in_link_opens_a_session_once(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    token = new_link(session_client, clinic.name, "Dr Once")
    first = session_client.get(SIGN_IN_LINK_PATH + token, follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/app"
    cookie = first.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/"):
        assert attribute in cookie
    account = session_client.get(
        "/app/account", headers={"Cookie": f"{SESSION_COOKIE}={session_from(first)}"}
    )
    assert account.status_code == 200
    assert "Dr Once" in account.text and clinic.name in account.text

    again = session_client.get(SIGN_IN_LINK_PATH + token, follow_redirects=False)
    assert again.status_code == 410
    assert "set-cookie" not in again.headers
    assert "cannot be used" in again.text


def test_an_expired_or_unknown_link_opens_nothing(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    token = new_link(session_client, clinic.name, "Dr Late")
    run(
        session_client,
        sa.update(sign_in_links)
        .where(sign_in_links.c.token_hash == hash_secret(token))
        .values(expires_at=sa.func.now() - timedelta(seconds=1)),
    )
    assert session_client.get(SIGN_IN_LINK_PATH + token).status_code == 410
    assert session_client.get(SIGN_IN_LINK_PATH + "x" * 43).status_code == 410


def test_the_link_is_stored_only_as_its_hash(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    token = new_link(session_client, clinic.name, "Dr Hash")

    async def stored() -> list[str]:
        async with session_client.app.state.db.begin() as conn:
            rows = await conn.execute(sa.select(sign_in_links.c.token_hash))
            return [row.token_hash for row in rows]

    hashes = session_client.blocking_portal.call(stored)
    assert hash_secret(token) in hashes and token not in hashes


def test_an_idle_session_ends(session_client: TestClient[Litestar], clinic: Clinic) -> None:
    user = sign_in(session_client, clinic.name)
    assert user.get("/app/account").status_code == 200
    run(
        session_client,
        sa.update(sessions)
        .where(sessions.c.id_hash == hash_secret(user.session))
        .values(last_seen_at=sa.func.now() - timedelta(minutes=15, seconds=1)),
    )
    response = user.get("/app/account")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/app/sign-in?next=")
    assert "Max-Age=0" in response.headers["set-cookie"]


def test_a_session_ends_at_its_absolute_limit_however_busy(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    run(
        session_client,
        sa.update(sessions)
        .where(sessions.c.id_hash == hash_secret(user.session))
        .values(expires_at=sa.func.now() - timedelta(seconds=1)),
    )
    assert user.get("/app/account").status_code == 303


def test_a_form_without_a_session_is_401_not_a_redirect(
    session_client: TestClient[Litestar],
) -> None:
    response = session_client.post("/app/sign-out", data={"_csrf": "x"}, follow_redirects=False)
    assert response.status_code == 401
    assert "Sign in again" in response.text


@pytest.mark.parametrize("csrf", [None, "", "forged-token-forged-token"])
def test_a_form_without_the_sessions_csrf_token_is_refused(
    session_client: TestClient[Litestar], clinic: Clinic, csrf: str | None
) -> None:
    user = sign_in(session_client, clinic.name)
    data = {} if csrf is None else {"_csrf": csrf}
    response = session_client.post(
        "/app/sign-out", data=data, headers=user.headers, follow_redirects=False
    )
    assert response.status_code == 403
    assert "security token" in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert user.get("/app/account").status_code == 200  # still signed in


def test_sign_out_ends_the_session(session_client: TestClient[Litestar], clinic: Clinic) -> None:
    user = sign_in(session_client, clinic.name)
    response = user.post("/app/sign-out")
    assert response.status_code == 303
    assert response.headers["location"] == "/app/sign-in?signed_out=1"
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert user.get("/app/account").status_code == 303
    assert "You are signed out" in session_client.get(response.headers["location"]).text


def test_a_disabled_user_is_signed_out(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    session_client.blocking_portal.call(
        Users(session_client.app.state.db).disable, clinic.name, user.user
    )
    assert user.get("/app/account").status_code == 303


def test_every_app_page_carries_the_security_headers(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    for response in (user.get("/app/account"), session_client.get("/app/sign-in")):
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'self'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "same-origin"
        assert re.fullmatch(r"app;dur=\d+\.\d", response.headers["server-timing"])


def test_frame_ancestors_come_from_the_setting(database_url: str) -> None:
    from service.app import create_app
    from service.settings import Settings

    app = create_app(
        Settings(database_url=database_url, frame_ancestors=frozenset({"https://ehr.example"}))
    )
    with TestClient(app) as client:
        policy = client.get("/app/sign-in").headers["content-security-policy"]
    assert "frame-ancestors 'self' https://ehr.example" in policy


def test_the_stylesheet_ships_with_the_package(session_client: TestClient[Litestar]) -> None:
    response = session_client.get("/app/static/app.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "http://" not in response.text and "https://" not in response.text


def test_a_session_cookie_of_another_form_is_no_session(
    session_client: TestClient[Litestar],
) -> None:
    for cookie in (f"{SESSION_COOKIE}=short", f'{SESSION_COOKIE}="broken', "other=1"):
        response = session_client.get(
            "/app/account", headers={"Cookie": cookie}, follow_redirects=False
        )
        assert response.status_code == 303


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/app/patients/p1?tab=trend", "/app/patients/p1?tab=trend"),
        ("/app", "/app"),
        ("https://evil.example/app", "/app"),
        ("//evil.example/app", "/app"),
        ("/app//evil.example", "/app"),
        ("/app\\evil", "/app"),
        ("/v1/patients/p1", "/app"),
        ("/application", "/app"),
        (None, "/app"),
    ],
)
def test_the_page_after_sign_in_stays_in_the_app(target: str | None, kept: str) -> None:
    assert safe_next(target) == kept
