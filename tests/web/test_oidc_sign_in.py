"""Signing in to the clinician app through the clinic's OpenID provider, end to end: the app
(real, on PostgreSQL) sends the browser to a real oidc-provider under Node, the browser signs
in there, and the provider's redirect back opens a session in the app."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.app import create_app
from service.platform.sessions import SESSION_COOKIE, hash_secret
from service.platform.tables import sign_in_flows, users
from service.settings import Settings
from service.web.controllers import FLOW_COOKIE
from service.web.oidc_sign_in import CALLBACK_PATH, IdentityProviders
from tests.conftest import Clinic, MakeClinic
from tests.helpers import BelongCli
from tests.signed_in import session_from
from tests.web.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    OpenIdProvider,
    running_provider,
    sign_in_at_provider,
)

PUBLIC_BASE = "https://belong.test"
assert PUBLIC_BASE + CALLBACK_PATH == REDIRECT_URI


@pytest.fixture(scope="module")
def app_client(database_url: str) -> Iterator[TestClient[Litestar]]:
    """The app behind its public base URL, the one the provider redirects back to."""
    app = create_app(Settings(database_url=database_url, public_base_url=PUBLIC_BASE))
    with TestClient(app) as client:
        yield client


def query(client: TestClient[Litestar], statement: sa.Executable) -> list[Any]:
    async def run() -> list[Any]:
        async with client.app.state.db.begin() as conn:
            return list(await conn.execute(statement))

    return client.blocking_portal.call(run)


def configure(
    client: TestClient[Litestar], clinic: str, op: OpenIdProvider, secret_ref: str, **settings: Any
) -> None:
    async def run() -> None:
        await IdentityProviders(client.app.state.db).configure(
            clinic, issuer=op.issuer, client_id=CLIENT_ID, secret_ref=secret_ref, **settings
        )

    client.blocking_portal.call(run)


def at_provider(
    client: TestClient[Litestar], clinic: Clinic, login: str, next_: str = "/app"
) -> dict[str, str]:
    """The app's redirect to the clinic's provider, followed by a browser that signs in there
    as ``login``: the query the provider sends the browser back to the app with."""
    to_provider = client.get(
        f"/app/sign-in/oidc/{clinic.clinic_id}", params={"next": next_}, follow_redirects=False
    )
    assert to_provider.status_code == 303, to_provider.text
    return sign_in_at_provider(to_provider.headers["location"], login)


def back_to_app(
    client: TestClient[Litestar], back: dict[str, str], started: str | None = None
) -> Any:
    """The provider's redirect back to the app, from the browser that the app sent off with
    the sign-in ``started`` (its cookie; by default the state brought back: that browser)."""
    cookie = back.get("state", "") if started is None else started
    return client.get(
        CALLBACK_PATH,
        params=back,
        headers={"Cookie": f"{FLOW_COOKIE}={cookie}"},
        follow_redirects=False,
    )


def opens_no_session(response: Any) -> bool:
    return not any(
        cookie.startswith(SESSION_COOKIE + "=")
        for cookie in response.headers.get_list("set-cookie")
    )


def the_user(client: TestClient[Litestar], clinic: Clinic, subject: str) -> list[Any]:
    return query(
        client,
        sa.select(users.c.name, users.c.role, users.c.issuer).where(
            users.c.clinic_id == clinic.clinic_id, users.c.subject == subject
        ),
    )


def test_a_clinician_signs_in_through_the_clinics_provider(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    openid_provider: OpenIdProvider,
    client_secret_env: str,
    belong_cli: BelongCli,
) -> None:
    configured = belong_cli(
        "clinics", "idp", "--clinic", clinic.name, "--issuer", openid_provider.issuer,
        "--client-id", CLIENT_ID, "--secret-ref", client_secret_env, "--scope", "profile",
    )  # fmt: skip
    assert configured.code == 0, configured.err
    assert configured.out[-1].endswith("/app/sign-in/oidc/callback")

    sign_in_page = app_client.get("/app/sign-in", params={"next": "/app/account"})
    assert f'href="/app/sign-in/oidc/{clinic.clinic_id}?next=/app/account"' in sign_in_page.text
    assert f"Sign in to {clinic.name}" in sign_in_page.text

    to_provider = app_client.get(
        f"/app/sign-in/oidc/{clinic.clinic_id}",
        params={"next": "/app/account"},
        follow_redirects=False,
    )
    assert to_provider.status_code == 303
    location = to_provider.headers["location"]
    sent = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert location.startswith(openid_provider.issuer + "/auth?")
    assert sent["redirect_uri"] == REDIRECT_URI and sent["code_challenge_method"] == "S256"
    flow_cookie = to_provider.headers["set-cookie"]
    assert flow_cookie.startswith(f"{FLOW_COOKIE}={sent['state']};")
    for attribute in ("httponly", "secure", "samesite=lax", "path=/", "max-age=600"):
        assert attribute in flow_cookie.lower()
    flows = query(
        app_client,
        sa.select(
            sign_in_flows.c.state_hash, sign_in_flows.c.expires_at, sign_in_flows.c.created_at
        ).where(sign_in_flows.c.clinic_id == clinic.clinic_id),
    )
    assert [f.state_hash for f in flows] == [hash_secret(sent["state"])]
    assert (flows[0].expires_at - flows[0].created_at).total_seconds() == 600

    back = sign_in_at_provider(location, "alice")
    signed_in = back_to_app(app_client, back)
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/app/account"
    assert f"{FLOW_COOKIE}=" in signed_in.headers.get_list("set-cookie")[-1]  # cleared
    session = session_from(signed_in)
    account = app_client.get("/app/account", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    assert account.status_code == 200
    assert "Alice Clinician" in account.text and "clinician" in account.text
    assert the_user(app_client, clinic, "alice") == [
        ("Alice Clinician", "clinician", openid_provider.issuer)
    ]

    # The provider's word on the role holds at each sign-in: the same user, a new role.
    configure(
        app_client, clinic.name, openid_provider, client_secret_env,
        role_map={"clinician": "coordinator"},
    )  # fmt: skip
    again = back_to_app(app_client, at_provider(app_client, clinic, "alice"))
    assert again.status_code == 303, again.text
    assert the_user(app_client, clinic, "alice") == [
        ("Alice Clinician", "coordinator", openid_provider.issuer)
    ]


def test_an_unknown_or_replayed_state_opens_no_session(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    openid_provider: OpenIdProvider,
    client_secret_env: str,
) -> None:
    configure(app_client, clinic.name, openid_provider, client_secret_env)
    back = at_provider(app_client, clinic, "alice")

    forged = back_to_app(app_client, {**back, "state": back["state"][:-2] + "xy"})
    assert forged.status_code == 400
    assert opens_no_session(forged)
    assert "expired or was used already" in forged.text
    missing = back_to_app(app_client, {"code": back["code"]})
    assert missing.status_code == 400 and opens_no_session(missing)

    assert back_to_app(app_client, back).status_code == 303
    replayed = back_to_app(app_client, back)
    assert replayed.status_code == 400
    assert opens_no_session(replayed)
    assert "expired or was used already" in replayed.text


def test_a_state_brought_back_to_another_browser_opens_no_session(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    openid_provider: OpenIdProvider,
    client_secret_env: str,
) -> None:
    """Login CSRF: someone's own sign-in, its redirect back sent to another person's browser,
    would sign that person in as someone."""
    configure(app_client, clinic.name, openid_provider, client_secret_env)
    back = at_provider(app_client, clinic, "alice")
    other = at_provider(app_client, clinic, "carol")
    for started in ("", other["state"]):
        refused = back_to_app(app_client, back, started=started)
        assert refused.status_code == 400 and opens_no_session(refused)
        assert "not started in this browser" in refused.text
    # The browser that started it still can.
    assert back_to_app(app_client, back).status_code == 303


def test_an_expired_flow_opens_no_session(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    openid_provider: OpenIdProvider,
    client_secret_env: str,
) -> None:
    configure(app_client, clinic.name, openid_provider, client_secret_env)
    back = at_provider(app_client, clinic, "alice")
    query(
        app_client,
        sa.update(sign_in_flows)
        .where(sign_in_flows.c.state_hash == hash_secret(back["state"]))
        .values(expires_at=sa.func.now() - sa.text("interval '1 second'"))
        .returning(sign_in_flows.c.state_hash),
    )
    late = back_to_app(app_client, back)
    assert late.status_code == 400 and opens_no_session(late)


def test_a_user_without_a_belong_role_is_refused(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    openid_provider: OpenIdProvider,
    client_secret_env: str,
) -> None:
    configure(app_client, clinic.name, openid_provider, client_secret_env)
    refused = back_to_app(app_client, at_provider(app_client, clinic, "bob"))
    assert refused.status_code == 403
    assert opens_no_session(refused)
    assert "no Belong role in the belong_role claim" in refused.text
    assert the_user(app_client, clinic, "bob") == []

    # A role the clinic's map does not name is no role either.
    configure(
        app_client, clinic.name, openid_provider, client_secret_env,
        role_map={"Belong.Admin": "admin"},
    )  # fmt: skip
    unmapped = back_to_app(app_client, at_provider(app_client, clinic, "alice"))
    assert unmapped.status_code == 403 and opens_no_session(unmapped)


def test_a_disabled_user_is_refused(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    openid_provider: OpenIdProvider,
    client_secret_env: str,
) -> None:
    configure(app_client, clinic.name, openid_provider, client_secret_env)
    assert back_to_app(app_client, at_provider(app_client, clinic, "carol")).status_code == 303
    query(
        app_client,
        sa.update(users)
        .where(users.c.clinic_id == clinic.clinic_id, users.c.subject == "carol")
        .values(disabled_at=sa.func.now())
        .returning(users.c.id),
    )
    refused = back_to_app(app_client, at_provider(app_client, clinic, "carol"))
    assert refused.status_code == 403 and opens_no_session(refused)
    assert "disabled" in refused.text


def test_another_clinics_sign_in_does_not_open_this_one(
    app_client: TestClient[Litestar],
    make_clinic: MakeClinic,
    openid_provider: OpenIdProvider,
    client_secret_env: str,
) -> None:
    ours, theirs, sharing = make_clinic(), make_clinic(), make_clinic()
    configure(app_client, ours.name, openid_provider, client_secret_env)
    with running_provider() as their_provider:
        configure(app_client, theirs.name, their_provider, client_secret_env)
        our_flow = app_client.get(f"/app/sign-in/oidc/{ours.clinic_id}", follow_redirects=False)
        our_state = parse_qs(urlsplit(our_flow.headers["location"]).query)["state"][0]
        their_back = at_provider(app_client, theirs, "alice")

        # Their provider's code, brought back with our clinic's state: a mix-up, refused
        # whether or not the redirect names their provider.
        for mixed in ({**their_back, "state": our_state}, {"code": their_back["code"]}):
            mixed["state"] = our_state
            refused = back_to_app(app_client, mixed)
            assert refused.status_code == 400 and opens_no_session(refused)
            our_flow = app_client.get(f"/app/sign-in/oidc/{ours.clinic_id}", follow_redirects=False)
            our_state = parse_qs(urlsplit(our_flow.headers["location"]).query)["state"][0]
        assert the_user(app_client, ours, "alice") == []

    # One provider for two clinics: the same person is a user of each, apart.
    configure(app_client, sharing.name, openid_provider, client_secret_env)
    for clinic in (ours, sharing):
        assert back_to_app(app_client, at_provider(app_client, clinic, "alice")).status_code == 303
    ids = query(
        app_client,
        sa.select(users.c.clinic_id).where(
            users.c.subject == "alice", users.c.clinic_id.in_([ours.clinic_id, sharing.clinic_id])
        ),
    )
    assert sorted(row.clinic_id for row in ids) == sorted([ours.clinic_id, sharing.clinic_id])


def test_a_clinic_without_a_provider_has_no_sign_in_through_one(
    app_client: TestClient[Litestar], clinic: Clinic
) -> None:
    page = app_client.get("/app/sign-in")
    assert f"/app/sign-in/oidc/{clinic.clinic_id}" not in page.text
    absent = app_client.get(f"/app/sign-in/oidc/{clinic.clinic_id}", follow_redirects=False)
    assert absent.status_code == 404
    assert app_client.get(f"/app/sign-in/oidc/{uuid.uuid4()}").status_code == 404


def test_the_cli_refuses_a_bad_provider_configuration(
    belong_cli: BelongCli, clinic: Clinic
) -> None:
    base = ["clinics", "idp", "--clinic", clinic.name, "--client-id", CLIENT_ID]
    for args, message in (
        (["--issuer", "http://idp.test", "--secret-ref", "env:X"], "https"),
        (["--issuer", "https://idp.test", "--secret-ref", "the-secret"], "env:VARIABLE"),
        (
            ["--issuer", "https://idp.test", "--secret-ref", "env:X", "--role-map", "a=root"],
            "not one of clinician, coordinator, admin",
        ),
    ):
        run = belong_cli(*base, *args)
        assert run.code == 2 and re.search(message, run.err), run.err
    unknown = belong_cli(
        "clinics", "idp", "--clinic", "no-such-clinic", "--issuer", "https://idp.test",
        "--client-id", CLIENT_ID, "--secret-ref", "env:X",
    )  # fmt: skip
    assert unknown.code == 2


def test_the_providers_refusal_or_a_missing_secret_opens_no_session(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    openid_provider: OpenIdProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BELONG_IDP_SECRET_LATER", "set for the sign-in's first half only")
    configure(app_client, clinic.name, openid_provider, "env:BELONG_IDP_SECRET_LATER")
    back = at_provider(app_client, clinic, "alice")
    denied = back_to_app(app_client, {"state": back["state"], "error": "access_denied"})
    assert denied.status_code == 400 and opens_no_session(denied)
    assert "did not sign you in (access_denied)" in denied.text

    back = at_provider(app_client, clinic, "alice")
    monkeypatch.delenv("BELONG_IDP_SECRET_LATER")
    unset = back_to_app(app_client, back)
    assert unset.status_code == 503 and opens_no_session(unset)
    assert "not set up correctly" in unset.text
    assert "BELONG_IDP_SECRET_LATER" not in unset.text


def test_no_code_token_or_secret_reaches_the_logs(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    openid_provider: OpenIdProvider,
    client_secret_env: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(app_client, clinic.name, openid_provider, client_secret_env)
    # httpx's own logger too: `belong serve`'s logging set-up, run by earlier tests in this
    # process, quiets it to WARNING, and its lines are what this test reads.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        back = at_provider(app_client, clinic, "alice")
        signed_in = back_to_app(app_client, back)
        assert signed_in.status_code == 303
        assert back_to_app(app_client, back).status_code == 400  # a refusal, logged
    # The app's records: its thread's, not this one's (where the test's browser logs its own
    # requests, the provider's redirects with code and state among them).
    logged = "\n".join(
        f"{record.getMessage()} {record.__dict__}"
        for record in caplog.records
        if record.thread != threading.get_ident()
    )
    assert "HTTP Request: POST" in logged  # Belong's own call to the token endpoint
    assert "sign-in refused" in logged
    for secret in (back["code"], back["state"], CLIENT_SECRET, session_from(signed_in)):
        assert secret not in logged
    assert "eyJ" not in logged  # no JWT (id_token) either
