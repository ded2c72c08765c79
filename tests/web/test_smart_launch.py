"""SMART App Launch of the clinician app, end to end over HTTP: the app (real, on PostgreSQL)
sends the browser to the test EHR's authorization server (oidc-provider under Node, issuing
SMART launch context), the browser signs in there on its own forms, and the redirect back
opens a session of the EHR's clinic on the launch's patient. Each refusal opens no session
and is recorded: an audit event of the EHR's clinic, or, for an unregistered iss, a
launch_refusals row."""

from __future__ import annotations

import re
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
from service.platform.tables import (
    audit_events,
    clinics,
    ehrs,
    launch_flows,
    launch_refusals,
    sessions,
)
from service.settings import Settings
from service.systems.model import APP_CONTEXTS
from service.systems.model import LAUNCH_PATH as CARD_LAUNCH_PATH
from service.web.launch import CALLBACK_PATH, LAUNCH_PATH, where_to
from service.web.launch_controllers import LAUNCH_COOKIE
from tests.conftest import Clinic, MakeClinic
from tests.helpers import BelongCli
from tests.smart_ehr import (
    CLIENT_SECRET,
    CLINICIAN,
    CONFIDENTIAL_CLIENT_ID,
    PATIENTS,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    TestEhr,
    running_ehr,
)
from tests.web.conftest import sign_in_at_provider

PUBLIC_BASE = "https://belong.test"
assert PUBLIC_BASE + CALLBACK_PATH == REDIRECT_URI
MRN_SYSTEM = PATIENTS["p-1"][0]["system"]


@pytest.fixture(scope="module")
def ehr() -> Iterator[TestEhr]:
    with running_ehr() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_ehr(ehr: TestEhr) -> Iterator[None]:
    yield
    ehr.reset()


@pytest.fixture(scope="module")
def app_client(database_url: str) -> Iterator[TestClient[Litestar]]:
    """The app behind its public base URL, the one the EHR redirects back to."""
    app = create_app(Settings(database_url=database_url, public_base_url=PUBLIC_BASE))
    with TestClient(app) as client:
        yield client


def query(client: TestClient[Litestar], statement: sa.Executable) -> list[Any]:
    async def run() -> list[Any]:
        async with client.app.state.db.begin() as conn:
            return list(await conn.execute(statement))

    return client.blocking_portal.call(run)


def release(client: TestClient[Litestar], belong_cli: BelongCli, iss: str) -> None:
    """The iss free again: removed from the clinic of an earlier test, if one holds it."""
    held = query(
        client,
        sa.select(clinics.c.name)
        .join(ehrs, ehrs.c.clinic_id == clinics.c.id)
        .where(ehrs.c.iss == iss),
    )
    for row in held:
        done = belong_cli("ehrs", "remove", "--clinic", row.name, "--iss", iss)
        assert done.code == 0, done.err


def register(
    client: TestClient[Litestar], belong_cli: BelongCli, clinic: Clinic, iss: str, *extra: str
) -> list[str]:
    release(client, belong_cli, iss.rstrip("/"))
    done = belong_cli(
        "ehrs", "add", "--clinic", clinic.name, "--iss", iss,
        "--client-id", PUBLIC_CLIENT_ID, *extra,
    )  # fmt: skip
    assert done.code == 0, done.err
    return done.out


@pytest.fixture
def registered(
    app_client: TestClient[Litestar], belong_cli: BelongCli, clinic: Clinic, ehr: TestEhr
) -> Clinic:
    """The clinic, its EHR registered (a public client), the EHR's patients known to it."""
    register(app_client, belong_cli, clinic, ehr.fhir_base)
    for patient in ("p-1", "p-2", "MRN-0001"):
        known(app_client, clinic, patient)
    return clinic


def known(client: TestClient[Litestar], clinic: Clinic, patient_id: str) -> None:
    """The patient known to the clinic (a matching profile stored)."""
    put = client.put(
        f"/v1/patients/{patient_id}", json={"languages": ["en"]}, headers=clinic.headers
    )
    assert put.status_code in (200, 201), put.text


def to_ehr(client: TestClient[Litestar], iss: str, launch: str | None) -> Any:
    params = {"iss": iss} if launch is None else {"iss": iss, "launch": launch}
    return client.get("/app/launch", params=params, follow_redirects=False)


def sent(response: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def at_ehr(to_ehr: Any) -> dict[str, str]:
    """The clinician signs in on the EHR's own forms: the query it redirects back with."""
    return sign_in_at_provider(
        to_ehr.headers["location"], CLINICIAN["sub"], redirect_uri=REDIRECT_URI
    )


def back_to_app(client: TestClient[Litestar], back: dict[str, str], started: str) -> Any:
    """The EHR's redirect back, from the browser whose launch cookie holds ``started``."""
    return client.get(
        CALLBACK_PATH,
        params=back,
        headers={"Cookie": f"{LAUNCH_COOKIE}={started}"},
        follow_redirects=False,
    )


def launched(client: TestClient[Litestar], ehr: TestEhr, launch: str | None) -> Any:
    """The whole launch: to the EHR, signed in there as the clinician, and back."""
    to = to_ehr(client, ehr.fhir_base, launch)
    assert to.status_code == 303, to.text
    back = at_ehr(to)
    return back_to_app(client, back, sent(to)["state"])


def session_cookie_of(response: Any) -> str | None:
    for cookie in response.headers.get_list("set-cookie"):
        if cookie.startswith(SESSION_COOKIE + "=") and not cookie.startswith(SESSION_COOKIE + "=;"):
            return cookie
    return None


def live_sessions(client: TestClient[Litestar], clinic: Clinic) -> int:
    return len(
        query(
            client,
            sa.select(sessions.c.id_hash).where(
                sessions.c.clinic_id == clinic.clinic_id, sessions.c.ended_at.is_(None)
            ),
        )
    )


def launch_audit(client: TestClient[Litestar], clinic: Clinic) -> list[Any]:
    return query(
        client,
        sa.select(
            audit_events.c.outcome,
            audit_events.c.status_code,
            audit_events.c.ehr_id,
            audit_events.c.user_id,
            audit_events.c.patient_id,
            audit_events.c.detail,
        )
        .where(audit_events.c.clinic_id == clinic.clinic_id, audit_events.c.action == "launch")
        .order_by(audit_events.c.recorded_at),
    )


def ehr_id(client: TestClient[Litestar], iss: str) -> uuid.UUID:
    return query(client, sa.select(ehrs.c.id).where(ehrs.c.iss == iss))[0].id


def assert_refused(
    client: TestClient[Litestar],
    clinic: Clinic,
    response: Any,
    reason: str,
    status: int = 400,
) -> None:
    """A clear page, no session (no cookie, no row), and the refusal in the clinic's audit
    trail with the EHR as actor."""
    assert response.status_code == status, (response.headers.get("location"), response.text)
    assert "Belong did not open" in response.text
    assert reason in response.text
    assert session_cookie_of(response) is None
    assert live_sessions(client, clinic) == 0
    last = launch_audit(client, clinic)[-1]
    assert (last.outcome, last.status_code, last.user_id) == ("failure", status, None)
    assert last.ehr_id is not None and reason in last.detail


def test_an_ehr_launch_opens_the_patients_page_in_a_session_of_the_clinic(
    app_client: TestClient[Litestar], registered: Clinic, ehr: TestEhr
) -> None:
    launch = ehr.new_launch(patient="p-1", appContext="recommendations", need_patient_banner=False)
    to = to_ehr(app_client, ehr.fhir_base, launch)
    assert to.status_code == 303, to.text
    request = sent(to)
    endpoint = to.headers["location"].split("?", 1)[0]
    assert endpoint.startswith(ehr.issuer + "/")
    assert request["aud"] == ehr.fhir_base
    assert request["launch"] == launch
    assert request["scope"] == "launch openid fhirUser"
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) == 43
    assert request["redirect_uri"] == REDIRECT_URI
    assert len(request["state"]) >= 22  # at least 128 random bits, base64url
    cookie = to.headers["set-cookie"]
    assert cookie.startswith(f"{LAUNCH_COOKIE}={request['state']};")
    for attribute in ("httponly", "secure", "samesite=none", "partitioned", "path=/"):
        assert attribute in cookie.lower(), cookie
    flows = query(app_client, sa.select(launch_flows.c.state_hash, launch_flows.c.standalone))
    assert (hash_secret(request["state"]), False) in [tuple(f) for f in flows]

    back = at_ehr(to)
    done = back_to_app(app_client, back, request["state"])
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/app/patients/p-1#recommendations"
    session = session_cookie_of(done)
    assert session is not None
    for attribute in ("httponly", "secure", "samesite=none", "partitioned", "path=/"):
        assert attribute in session.lower(), session
    session_id = session.split(";", 1)[0].split("=", 1)[1]

    page = app_client.get("/app/patients/p-1", headers={"Cookie": f"{SESSION_COOKIE}={session_id}"})
    assert page.status_code == 200, page.text
    # The EHR shows its own patient banner: the page's heading is for screen readers only.
    assert '<h1 class="visually-hidden">Patient p-1</h1>' in page.text
    assert "Practitioner/123" in page.text  # the user, named by the EHR's fhirUser
    policy = page.headers["content-security-policy"]
    ancestors = re.search(r"frame-ancestors ([^;]+)", policy)
    assert ancestors is not None and ehr.origin in ancestors.group(1).split()

    user = query(
        app_client,
        sa.text("SELECT name, role, issuer, subject FROM users WHERE clinic_id = :c").bindparams(
            c=registered.clinic_id
        ),
    )
    assert [tuple(u) for u in user] == [
        ("Practitioner/123", "clinician", ehr.fhir_base, "Practitioner/123")
    ]
    audit = launch_audit(app_client, registered)
    assert [(a.outcome, a.patient_id, a.ehr_id) for a in audit] == [("success", "p-1", None)]
    assert audit[0].user_id is not None


def test_the_banner_shows_unless_the_ehr_says_it_shows_its_own(
    app_client: TestClient[Litestar], registered: Clinic, ehr: TestEhr
) -> None:
    done = launched(app_client, ehr, ehr.new_launch(patient="p-1"))
    assert done.headers["location"] == "/app/patients/p-1"
    session_id = session_cookie_of(done).split(";", 1)[0].split("=", 1)[1]
    page = app_client.get("/app/patients/p-1", headers={"Cookie": f"{SESSION_COOKIE}={session_id}"})
    assert "<h1>Patient p-1</h1>" in page.text


def test_a_screening_due_card_opens_the_screening_entry_for_the_patient(
    app_client: TestClient[Litestar], registered: Clinic, ehr: TestEhr
) -> None:
    done = launched(app_client, ehr, ehr.new_launch(patient="p-1", appContext="screening"))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/app/screenings/new?patient=p-1"


def test_a_standalone_launch_asks_the_ehr_for_a_patient(
    app_client: TestClient[Litestar], registered: Clinic, ehr: TestEhr
) -> None:
    to = to_ehr(app_client, ehr.fhir_base, None)
    assert sent(to)["scope"] == "launch/patient openid fhirUser"
    assert "launch" not in sent(to)
    back = at_ehr(to)
    done = back_to_app(app_client, back, sent(to)["state"])
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/app/patients/p-2"
    assert session_cookie_of(done) is not None


def test_a_confidential_client_and_a_patient_identifier_system(
    app_client: TestClient[Litestar],
    clinic: Clinic,
    ehr: TestEhr,
    belong_cli: BelongCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BELONG_EHR_SECRET_TEST", CLIENT_SECRET)
    release(app_client, belong_cli, ehr.fhir_base)
    known(app_client, clinic, "MRN-0001")
    done = belong_cli(
        "ehrs", "add", "--clinic", clinic.name, "--iss", ehr.fhir_base,
        "--client-id", CONFIDENTIAL_CLIENT_ID, "--secret-ref", "env:BELONG_EHR_SECRET_TEST",
        "--patient-identifier-system", MRN_SYSTEM,
    )  # fmt: skip
    assert done.code == 0, done.err
    to = to_ehr(app_client, ehr.fhir_base, ehr.new_launch(patient="p-1"))
    assert sent(to)["scope"] == "launch openid fhirUser patient/Patient.rs"
    back = at_ehr(to)
    arrived = back_to_app(app_client, back, sent(to)["state"])
    assert arrived.status_code == 303, arrived.text
    # The EHR's p-1 is Belong's MRN-0001: the identifier of that system in its Patient.
    assert arrived.headers["location"] == "/app/patients/MRN-0001"


def test_the_cli_registers_an_ehr_and_says_what_to_register_in_it(
    app_client: TestClient[Litestar],
    belong_cli: BelongCli,
    clinic: Clinic,
    make_clinic: MakeClinic,
    ehr: TestEhr,
) -> None:
    out = register(
        app_client, belong_cli, clinic, ehr.fhir_base + "/", "--frame-origin", "https://ehr.test"
    )
    assert out[-2].endswith("/app/launch") and out[-1].endswith("/app/launch/callback")
    listed = belong_cli("ehrs", "list", "--clinic", clinic.name)
    assert listed.code == 0 and listed.out[0].split("\t")[1:4] == [
        ehr.fhir_base,
        PUBLIC_CLIENT_ID,
        "clinician",
    ]
    other = make_clinic()
    taken = belong_cli(
        "ehrs", "add", "--clinic", other.name, "--iss", ehr.fhir_base, "--client-id", "x"
    )
    assert taken.code == 2 and "registered for another clinic" in taken.err
    for bad, word in (
        (["--iss", "ftp://ehr.test/fhir"], "https"),
        (["--iss", ehr.fhir_base, "--frame-origin", "https://ehr.test/path"], "origin"),
        (["--iss", ehr.fhir_base, "--secret-ref", "plain-secret"], "env:VARIABLE"),
    ):
        refused = belong_cli("ehrs", "add", "--clinic", clinic.name, "--client-id", "x", *bad)
        assert refused.code == 2 and word in refused.err, refused.err


def test_an_unregistered_iss_is_refused_for_the_operator(
    app_client: TestClient[Litestar], clinic: Clinic
) -> None:
    iss = f"https://unknown-{uuid.uuid4().hex[:6]}.test/fhir"
    refused = to_ehr(app_client, iss, "some-launch")
    assert refused.status_code == 400
    assert "not registered with Belong" in refused.text
    assert session_cookie_of(refused) is None
    rows = query(
        app_client, sa.select(launch_refusals.c.reason).where(launch_refusals.c.iss == iss)
    )
    assert [r.reason for r in rows] == ["this EHR (iss) is not registered with Belong"]
    missing = app_client.get("/app/launch", follow_redirects=False)
    assert missing.status_code == 400 and "no iss" in missing.text


def test_a_tampered_state_is_refused_and_spends_the_browsers_launch(
    app_client: TestClient[Litestar], registered: Clinic, ehr: TestEhr
) -> None:
    to = to_ehr(app_client, ehr.fhir_base, ehr.new_launch(patient="p-1"))
    back = at_ehr(to)
    original = back["state"]
    tampered = {**back, "state": original[:-2] + ("AA" if original[-2:] != "AA" else "BB")}
    refused = back_to_app(app_client, tampered, original)
    assert_refused(app_client, registered, refused, "not started in this browser")
    # The browser's own launch is spent with it: the untampered answer opens nothing now.
    after = back_to_app(app_client, back, original)
    assert_refused(app_client, registered, after, "expired or was used already")


def test_a_replayed_state_is_refused(
    app_client: TestClient[Litestar], registered: Clinic, ehr: TestEhr
) -> None:
    to = to_ehr(app_client, ehr.fhir_base, ehr.new_launch(patient="p-1"))
    back = at_ehr(to)
    first = back_to_app(app_client, back, sent(to)["state"])
    assert first.status_code == 303
    app_client.post("/app/sign-out")  # (no effect without the cookie; the session stays)
    replayed = back_to_app(app_client, back, sent(to)["state"])
    assert replayed.status_code == 400
    assert "expired or was used already" in replayed.text
    assert session_cookie_of(replayed) is None
    assert launch_audit(app_client, registered)[-1].outcome == "failure"


@pytest.mark.parametrize(
    ("tampering", "reason"),
    [
        ({"aud": "another-app"}, "not meant for Belong (aud)"),
        ({"iss": "http://127.0.0.1:9/elsewhere"}, "issued by another provider"),
        ({"exp_offset": -3600}, "has expired"),
        ({"nonce": "another-nonce"}, "nonce is not this sign-in"),
        ({"unpublished_key": True}, "signature does not verify"),
        ({"drop": ["fhirUser"]}, "named no user (fhirUser)"),
        ({"drop": True}, "no id_token"),
    ],
)
def test_an_id_token_that_does_not_hold_is_refused(
    app_client: TestClient[Litestar],
    registered: Clinic,
    ehr: TestEhr,
    tampering: dict[str, Any],
    reason: str,
) -> None:
    ehr.tamper_next_id_token(**tampering)
    refused = launched(app_client, ehr, ehr.new_launch(patient="p-1"))
    assert_refused(app_client, registered, refused, reason)


def test_a_server_offering_plain_pkce_is_refused(
    app_client: TestClient[Litestar], clinic: Clinic, ehr: TestEhr, belong_cli: BelongCli
) -> None:
    register(app_client, belong_cli, clinic, ehr.plain_fhir_base)
    refused = to_ehr(app_client, ehr.plain_fhir_base, ehr.new_launch(patient="p-1"))
    assert_refused(app_client, clinic, refused, "offers plain PKCE", status=502)
    assert launch_audit(app_client, clinic)[-1].ehr_id == ehr_id(app_client, ehr.plain_fhir_base)


def test_a_patient_of_another_clinic_is_refused(
    app_client: TestClient[Litestar],
    registered: Clinic,
    make_clinic: MakeClinic,
    ehr: TestEhr,
) -> None:
    other = make_clinic()
    known(app_client, other, "p-3")
    refused = launched(app_client, ehr, ehr.new_launch(patient="p-3"))
    assert_refused(app_client, registered, refused, "known to another clinic", status=403)
    assert launch_audit(app_client, registered)[-1].patient_id == "p-3"


def test_a_patient_belong_has_not_seen_opens_the_screening_entry(
    app_client: TestClient[Litestar], registered: Clinic, ehr: TestEhr
) -> None:
    done = launched(app_client, ehr, ehr.new_launch(patient="p-new", appContext="recommendations"))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/app/screenings/new?patient=p-new"


def test_the_ehr_refusing_the_authorization_is_refused_here(
    app_client: TestClient[Litestar], registered: Clinic, ehr: TestEhr
) -> None:
    # A launch id the EHR does not know: its authorization server answers with an error.
    to = to_ehr(app_client, ehr.fhir_base, "no-such-launch")
    back = at_ehr(to)
    assert "error" in back, back
    refused = back_to_app(app_client, back, sent(to)["state"])
    assert_refused(app_client, registered, refused, "did not authorize the launch")


def test_the_cds_cards_launch_url_and_contexts_are_the_launchs() -> None:
    """The CDS Hooks cards' smart links (service/systems) point at this launch, and each
    appContext they carry opens its own page."""
    assert CARD_LAUNCH_PATH == LAUNCH_PATH
    assert {context: where_to("p-1", context) for context in APP_CONTEXTS} == {
        "recommendations": "/app/patients/p-1#recommendations",
        "screening": "/app/screenings/new?patient=p-1",
    }
