"""SMART Backend Services and CDS Hooks 2.0, end to end, with real signed JWTs.

Every refusal the specifications require is covered: expired, replayed (``jti``),
unsigned (``alg: none``) and HMAC-signed JWTs, a wrong ``aud``, an unknown issuer, a key
the client never registered, and assertions that would live over five minutes. Cards are
checked against the CDS Hooks 2.0 response rules by :func:`assert_valid_cards`.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.servicerequest import ServiceRequest as ServiceRequestR4B
from litestar import Litestar
from litestar.testing import TestClient

from service.cli import main as belong
from service.platform import system_auth as systems
from service.platform.tables import access_tokens, cds_feedback, client_keys, used_jtis
from service.systems.controllers.cds import SERVICE_ID
from service.systems.controllers.smart import ASSERTION_TYPE
from service.systems.model import belong_scopes
from service.systems.repository import create_system_client
from tests.conftest import Clinic, MakeClinic
from tests.helpers import BelongCli, seconds_until_refused
from tests.jwt_keys import claims, ec_key, hmac_signed, public_jwks, rsa_key, sign, unsigned

BASE = "http://testserver.local"
TOKEN_URL = f"{BASE}/auth/token"
SERVICE_URL = f"{BASE}/cds-services/{SERVICE_ID}"
FEEDBACK_URL = f"{SERVICE_URL}/feedback"
FORM = {"content-type": "application/x-www-form-urlencoded"}
ALL_SMART = (
    "system/Observation.rs system/QuestionnaireResponse.cud system/ServiceRequest.rs "
    "system/Task.cud system/HealthcareService.cud system/AuditEvent.read"
)
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


# --------------------------------------------------------------------------- fixtures


class System:
    def __init__(self, issuer: str, clinic: Clinic) -> None:
        self.issuer = issuer
        self.clinic = clinic


def register(
    session_client: TestClient[Litestar],
    clinic_name: str,
    scopes: list[str],
    *,
    issuer: str | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
) -> str:
    async def create() -> str:
        async with session_client.app.state.db.begin() as conn:
            client = await create_system_client(
                conn,
                clinic_name,
                scopes,
                "system",
                issuer=issuer,
                jwks=jwks if jwks_url is None else None,
                jwks_url=jwks_url,
            )
        return client.issuer

    return session_client.blocking_portal.call(create)


@pytest.fixture
def system(session_client: TestClient[Litestar], clinic: Clinic) -> System:
    """A SMART client of ``clinic`` (every scope) with an RSA and a P-384 key."""
    scopes = [
        "screenings:read",
        "screenings:write",
        "referrals:read",
        "referrals:write",
        "directory:write",
        "audit:read",
    ]
    issuer = register(session_client, clinic.name, scopes, jwks=public_jwks(rsa_key(), ec_key()))
    return System(issuer, clinic)


@pytest.fixture
def ehr(session_client: TestClient[Litestar], clinic: Clinic) -> System:
    """A CDS client (the EHR) of ``clinic``, known by its issuer URL."""
    issuer = f"https://ehr.example.org/{uuid.uuid4()}"
    register(
        session_client,
        clinic.name,
        ["referrals:read"],
        issuer=issuer,
        jwks=public_jwks(ec_key(), rsa_key()),
    )
    return System(issuer, clinic)


def run(session_client: TestClient[Litestar], work: Any) -> Any:
    async def call() -> Any:
        async with session_client.app.state.db.begin() as conn:
            return await work(conn)

    return session_client.blocking_portal.call(call)


# --------------------------------------------------------------------------- SMART


def assertion(system: System, alg: str = "ES384", **overrides: Any) -> str:
    key = ec_key() if alg == "ES384" else rsa_key()
    body = claims(system.issuer, TOKEN_URL, sub=system.issuer)
    body.update(overrides)
    return sign({k: v for k, v in body.items() if v is not None}, key, alg)


def token_request(
    session_client: TestClient[Litestar],
    client_assertion: str,
    scope: str = ALL_SMART,
    **extra: str,
) -> Any:
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion,
        **extra,
    }
    return session_client.post("/auth/token", data=form, headers=FORM)


def test_smart_configuration_is_published_at_the_root_and_the_fhir_base(
    session_client: TestClient[Litestar],
) -> None:
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        response = session_client.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        config = response.json()
        assert config["token_endpoint"] == TOKEN_URL
        assert config["grant_types_supported"] == ["client_credentials"]
        assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {
            "RS384",
            "ES384",
        }
        assert "client-confidential-asymmetric" in config["capabilities"]
        assert {"permission-v1", "permission-v2"} <= set(config["capabilities"])
        assert "system/Observation.rs" in config["scopes_supported"]
        assert "code_challenge_methods_supported" in config


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_token_exchange_gives_a_short_token_that_works_like_a_clinic_token(
    session_client: TestClient[Litestar], system: System, alg: str
) -> None:
    response = token_request(session_client, assertion(system, alg))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 300
    assert set(body["scope"].split()) == set(ALL_SMART.split())
    assert "refresh_token" not in body
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert session_client.get("/v1/audit-events", headers=headers).status_code == 200
    patient = f"pat-{uuid.uuid4()}"
    assert (
        session_client.put(
            f"/v1/patients/{patient}", json={"languages": ["en"]}, headers=headers
        ).status_code
        == 201
    )
    search = session_client.get("/fhir/Observation", params={"patient": patient}, headers=headers)
    assert search.status_code == 200, search.text
    # the clinic's own opaque token still works beside it
    assert session_client.get("/v1/audit-events", headers=system.clinic.headers).status_code == 200


def test_granted_scopes_limit_what_the_access_token_may_do(
    session_client: TestClient[Litestar], system: System
) -> None:
    response = token_request(session_client, assertion(system), scope="system/Observation.read")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Observation.read"
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert session_client.get("/v1/audit-events", headers=headers).status_code == 403
    assert (
        session_client.get(
            "/fhir/Observation", params={"patient": "x"}, headers=headers
        ).status_code
        == 200
    )


def test_scopes_the_client_was_not_registered_with_are_not_granted(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    issuer = register(session_client, clinic.name, ["screenings:read"], jwks=public_jwks(ec_key()))
    me = System(issuer, clinic)
    partial = token_request(
        session_client, assertion(me), scope="system/Observation.rs system/AuditEvent.rs"
    )
    assert partial.status_code == 200, partial.text
    assert partial.json()["scope"] == "system/Observation.rs"
    refused = token_request(session_client, assertion(me), scope="system/AuditEvent.rs")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    unknown = token_request(session_client, assertion(me), scope="patient/Observation.rs")
    assert unknown.json()["error"] == "invalid_scope"


def test_scope_mapping_table() -> None:
    assert belong_scopes("system/Observation.rs") == {"screenings:read"}
    assert belong_scopes("system/Observation.read") == {"screenings:read"}
    assert belong_scopes("system/QuestionnaireResponse.cud") == {"screenings:write"}
    assert belong_scopes("system/QuestionnaireResponse.write") == {"screenings:write"}
    assert belong_scopes("system/ServiceRequest.rs") == {"referrals:read"}
    assert belong_scopes("system/Task.cud") == {"referrals:write"}
    assert belong_scopes("system/Task.cruds") == {"referrals:read", "referrals:write"}
    assert belong_scopes("system/HealthcareService.cud") == {"directory:write"}
    assert belong_scopes("system/AuditEvent.rs") == {"audit:read"}
    for refused in (
        "system/Observation.cud",
        "system/Patient.rs",
        "system/Observation.sr",
        "user/Observation.rs",
        "system/*.read",
        "system/Observation.rx",
    ):
        assert belong_scopes(refused) is None, refused


def refused_client(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


def test_a_replayed_assertion_is_refused(
    session_client: TestClient[Litestar], system: System
) -> None:
    once = assertion(system)
    assert token_request(session_client, once).status_code == 200
    refused_client(token_request(session_client, once))
    same_jti = claims(system.issuer, TOKEN_URL, sub=system.issuer)
    first = sign(same_jti, ec_key(), "ES384")
    second = sign({**same_jti, "exp": same_jti["exp"] - 1}, rsa_key(), "RS384")
    assert token_request(session_client, first).status_code == 200
    refused_client(token_request(session_client, second))


def test_refused_assertions(session_client: TestClient[Litestar], system: System) -> None:
    now = int(time.time())
    iss = system.issuer
    good = claims(iss, TOKEN_URL, sub=iss)
    other_rsa = __import__("joserfc.jwk", fromlist=["RSAKey"]).RSAKey.generate_key(
        2048, parameters={"kid": "rsa-1"}
    )
    cases = {
        "expired": sign({**good, "iat": now - 400, "exp": now - 100}, ec_key(), "ES384"),
        "lives over five minutes": sign({**good, "exp": now + 600}, ec_key(), "ES384"),
        "iat to exp over five minutes": sign(
            {**good, "iat": now - 200, "exp": now + 200}, ec_key(), "ES384"
        ),
        "no exp": sign({k: v for k, v in good.items() if k != "exp"}, ec_key(), "ES384"),
        "no jti": sign({k: v for k, v in good.items() if k != "jti"}, ec_key(), "ES384"),
        "wrong aud": sign({**good, "aud": f"{BASE}/token"}, ec_key(), "ES384"),
        "sub differs": sign({**good, "sub": "someone"}, ec_key(), "ES384"),
        "unknown issuer": sign({**good, "iss": "nobody", "sub": "nobody"}, ec_key(), "ES384"),
        "unsigned": unsigned({**good}),
        "HMAC": hmac_signed({**good}, b"a shared secret", "HS256"),
        "HMAC keyed with the public key": hmac_signed(
            {**good}, str(public_jwks(rsa_key())).encode(), "HS384", kid="rsa-1"
        ),
        "a key never registered": sign({**good}, other_rsa, "RS384"),
        "RS256": __import__("joserfc.jwt", fromlist=["encode"]).encode(
            {"alg": "RS256", "kid": "rsa-1"}, {**good}, rsa_key(), algorithms=["RS256"]
        ),
        "garbage": "not.a.jwt",
        "tampered": assertion(system)[:-4] + "AAAA",
    }
    for name, token in cases.items():
        # each case gets a fresh jti, so a refusal is never just the replay check
        response = token_request(session_client, token)
        assert response.status_code == 401, (name, response.text)
        assert response.json()["error"] == "invalid_client", name


def test_malformed_token_requests(session_client: TestClient[Litestar], system: System) -> None:
    wrong_grant = token_request(session_client, assertion(system), grant_type="password")
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    wrong_type = session_client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": ALL_SMART,
            "client_assertion_type": "urn:other",
            "client_assertion": assertion(system),
        },
        headers=FORM,
    )
    assert wrong_type.json()["error"] == "invalid_request"
    no_scope = token_request(session_client, assertion(system), scope="")
    assert no_scope.json()["error"] == "invalid_request"
    as_json = session_client.post(
        "/auth/token",
        json={"grant_type": "client_credentials", "client_assertion": assertion(system)},
    )
    assert as_json.status_code == 415


def test_an_expired_access_token_is_refused(
    session_client: TestClient[Litestar], system: System
) -> None:
    token = token_request(session_client, assertion(system)).json()["access_token"]

    async def expire(conn: Any) -> None:
        await conn.execute(
            sa.update(access_tokens).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    run(session_client, expire)
    session_client.app.state.token_cache._entries.clear()
    response = session_client.get("/v1/audit-events", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_used_jtis_are_unique_in_the_database(
    session_client: TestClient[Litestar], system: System
) -> None:
    async def twice(conn: Any) -> None:
        row = {"issuer": system.issuer, "jti": "x", "expires_at": datetime.now(UTC)}
        await conn.execute(sa.insert(used_jtis).values(**row))
        await conn.execute(sa.insert(used_jtis).values(**row))

    with pytest.raises(sa.exc.IntegrityError):
        run(session_client, twice)


def test_a_jwks_url_is_fetched_and_a_foreign_jku_refused(
    session_client: TestClient[Litestar], clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://keys.example.org/{uuid.uuid4()}.json"
    fetched: list[str] = []

    def fetch(asked: str) -> dict[str, Any]:
        fetched.append(asked)
        return public_jwks(ec_key())

    monkeypatch.setattr(systems, "fetch_jwks", fetch)
    issuer = register(session_client, clinic.name, ["audit:read"], jwks_url=url)
    me = System(issuer, clinic)
    ok = token_request(session_client, assertion(me), scope="system/AuditEvent.rs")
    assert ok.status_code == 200, ok.text
    assert fetched == [url]
    body = claims(issuer, TOKEN_URL, sub=issuer)
    foreign = sign(body, ec_key(), "ES384", jku="https://evil.example.org/jwks.json")
    refused_client(token_request(session_client, foreign, scope="system/AuditEvent.rs"))


def test_cli_registers_a_jwks_file(
    tmp_path: Any, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("BELONG_DATABASE_URL", database_url)
    keys = tmp_path / "jwks.json"
    keys.write_text(__import__("json").dumps(public_jwks(ec_key())))
    issuer = f"https://ehr.example.org/{uuid.uuid4()}"
    clinic = f"cli-{uuid.uuid4()}"
    code = belong(
        [
            "clients",
            "create",
            "--clinic",
            clinic,
            "--create-clinic",
            "--scope",
            "referrals:read",
            "--jwks",
            str(keys),
            "--issuer",
            issuer,
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1] == issuer
    private = tmp_path / "private.json"
    private.write_text(
        __import__("json").dumps(
            __import__("joserfc.jwk", fromlist=["KeySet"]).KeySet([ec_key()]).as_dict(private=True)
        )
    )
    assert (
        belong(
            [
                "clients",
                "create",
                "--clinic",
                "x",
                "--scope",
                "referrals:read",
                "--jwks",
                str(private),
            ]
        )
        == 2
    )
    assert (
        belong(
            [
                "clients",
                "create",
                "--clinic",
                clinic,
                "--scope",
                "referrals:read",
                "--jwks",
                str(keys),
                "--issuer",
                issuer,
            ]
        )
        == 2
    )  # the issuer is taken


# --------------------------------------------------------------------------- CDS Hooks


def assert_valid_cards(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The CDS Hooks 2.0 response rules for cards."""
    import re

    assert set(body) <= {"cards", "systemActions"}, body
    assert isinstance(body["cards"], list)
    for card in body["cards"]:
        assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140, card
        assert card["indicator"] in ("info", "warning", "critical")
        assert isinstance(card["source"]["label"], str) and card["source"]["label"]
        if "topic" in card["source"]:
            assert {"code", "display"} <= set(card["source"]["topic"])
        assert re.match(UUID_RE, card["uuid"])
        if "detail" in card:
            assert isinstance(card["detail"], str)
        suggestions = card.get("suggestions", [])
        if suggestions:
            assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in suggestions:
            assert isinstance(suggestion["label"], str) and suggestion["label"]
            assert re.match(UUID_RE, suggestion["uuid"])
            assert isinstance(suggestion.get("isRecommended", False), bool)
            for action in suggestion.get("actions", []):
                assert action["type"] in ("create", "update", "delete")
                assert isinstance(action["description"], str)
                if action["type"] == "create":
                    assert isinstance(action["resource"], dict)
                    assert action["resource"]["resourceType"]
        for reason in card.get("overrideReasons", []):
            assert reason["display"] and reason["code"]
        for link in card.get("links", []):
            assert set(link) <= {"label", "url", "type", "appContext"}, link
            assert link["label"] and link["type"] in ("absolute", "smart")
            assert link["url"].startswith(("http://", "https://"))
            if link["type"] == "absolute":
                assert "appContext" not in link
            else:
                assert isinstance(link.get("appContext", ""), str)
    return list(body["cards"])


def smart_links(cards: list[dict[str, Any]], base: str = BASE) -> list[dict[str, Any]]:
    """Every card's links, checked to be Belong's own: none to raw Questionnaire JSON, each
    ``smart`` link to the launch URL under ``base``."""
    links = [link for card in cards for link in card.get("links", [])]
    assert not any("/fhir/Questionnaire" in link["url"] for link in links), links
    for link in links:
        if link["type"] == "smart":
            assert link["url"] == f"{base}/app/launch", link
    return links


def open_in_belong(app_context: str, label: str, base: str = BASE) -> dict[str, str]:
    return {
        "label": label,
        "url": f"{base}/app/launch",
        "type": "smart",
        "appContext": app_context,
    }


RECOMMENDATIONS_LINK = open_in_belong("recommendations", "Open in Belong: recommendations")
SCREENING_LINK = open_in_belong("screening", "Open in Belong: enter a screening")


def hook_call(patient_id: str, with_prefetch: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr-1", "patientId": patient_id},
    }
    if with_prefetch:
        body["prefetch"] = {"patient": {"resourceType": "Patient", "id": patient_id}}
    body.update(extra)
    return body


def cds_jwt(ehr: System, aud: str = SERVICE_URL, alg: str = "ES384", **overrides: Any) -> str:
    body = claims(ehr.issuer, aud)
    body.update(overrides)
    key = ec_key() if alg == "ES384" else rsa_key()
    return sign({k: v for k, v in body.items() if v is not None}, key, alg)


def call(
    session_client: TestClient[Litestar],
    ehr: System,
    body: dict[str, Any],
    token: str | None = None,
) -> Any:
    return session_client.post(
        f"/cds-services/{SERVICE_ID}",
        json=body,
        headers={"Authorization": f"Bearer {token or cds_jwt(ehr)}"},
    )


def screen(
    client: TestClient[Litestar], patient: str, answers: dict[str, int], when: datetime
) -> None:
    if client.get(f"/v1/patients/{patient}").status_code == 404:
        assert client.put(f"/v1/patients/{patient}", json={"languages": ["en"]}).status_code == 201
    response = client.post(
        "/v1/screenings",
        json={
            "patient_id": patient,
            "instrument": "ucla-3",
            "completed_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "answers": answers,
        },
    )
    assert response.status_code == 201, response.text


LONELY = {"1": 3, "2": 3, "3": 3}
NOT_LONELY = {"1": 1, "2": 1, "3": 1}


def test_discovery_lists_the_patient_view_service(session_client: TestClient[Litestar]) -> None:
    response = session_client.get("/cds-services")
    assert response.status_code == 200
    services = response.json()["services"]
    assert len(services) == 1
    service = services[0]
    assert service["hook"] == "patient-view"
    assert service["id"] == SERVICE_ID
    assert service["description"] and service["title"]
    assert service["prefetch"] == {"patient": "Patient/{{context.patientId}}"}


def test_a_recent_positive_screen_gives_a_warning_card_with_referrals(
    session_client: TestClient[Litestar],
    client: TestClient[Litestar],
    clinic: Clinic,
    ehr: System,
) -> None:
    service = client.post(
        "/v1/directory/services",
        json={
            "name": "Pain [Peer] Circle",
            "organization": "Test Trust",
            "category": "support-group",
            "modalities": ["online"],
        },
    ).json()
    patient = f"pat-{uuid.uuid4()}"
    when = datetime.now(UTC) - timedelta(days=3)
    screen(client, patient, LONELY, when)
    response = call(session_client, ehr, hook_call(patient))
    assert response.status_code == 200, response.text
    cards = assert_valid_cards(response.json())
    assert len(cards) == 1
    card = cards[0]
    assert card["indicator"] == "warning"
    assert "Loneliness" in card["summary"]
    assert "UCLA" in card["detail"] and "9" in card["detail"]
    assert when.date().isoformat() in card["detail"]
    assert r"Pain \[Peer\] Circle" in card["detail"]  # directory text is escaped
    assert card["selectionBehavior"] == "any"
    suggestion = card["suggestions"][0]
    assert suggestion["isRecommended"] is True
    assert smart_links(cards) == [RECOMMENDATIONS_LINK]
    resource = suggestion["actions"][0]["resource"]
    assert resource["resourceType"] == "ServiceRequest"
    assert resource["status"] == "draft"
    # The EHR's own patient from the hook context; what Belong serves, absolute
    assert resource["subject"] == {"reference": f"Patient/{patient}"}
    performer = resource["performer"][0]["reference"]
    assert performer == f"{BASE}/fhir/HealthcareService/{service['id']}"
    requester = resource["requester"]["reference"]
    assert requester == f"{BASE}/fhir/Organization/{clinic.clinic_id}"
    assert resource["reasonReference"][0]["reference"].startswith(f"{BASE}/fhir/Observation/")
    ServiceRequestR4B.model_validate(resource)
    for absolute in (performer, requester, resource["reasonReference"][0]["reference"]):
        read = client.get(absolute.removeprefix(BASE))
        assert read.status_code == 200, (absolute, read.text)
    # coded exactly as the ServiceRequest Belong stores for a referral to the service
    referral = client.post(
        "/v1/referrals",
        json={
            "patient_id": patient,
            "service_id": service["id"],
            "need": "loneliness",
            "consent": {"given": True, "method": "verbal"},
        },
    )
    assert referral.status_code == 201, referral.text
    stored = client.get(f"/fhir/ServiceRequest/{referral.json()['id']}").json()
    assert resource["code"]["coding"] == stored["code"]["coding"]
    assert resource["code"]["coding"][0]["system"] == "http://snomed.info/sct"
    assert resource["requester"]["display"] == stored["requester"]["display"]
    trail = client.get("/v1/audit-events", params={"patient_id": patient, "limit": 200})
    assert any(e["resource_type"] == "CdsCards" for e in trail.json()["items"])


def test_the_card_says_when_the_patients_profile_is_incomplete(
    session_client: TestClient[Litestar], client: TestClient[Litestar], ehr: System
) -> None:
    for name, languages in (("Arabic Circle", ["ar"]), ("English Circle", ["en"])):
        body = {
            "name": name,
            "organization": "Test Trust",
            "category": "support-group",
            "modalities": ["online"],
            "languages": languages,
        }
        assert client.post("/v1/directory/services", json=body).status_code == 201
    patient = f"pat-{uuid.uuid4()}"  # no profile: Belong knows only the screening
    when = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    screened = client.post(
        "/v1/screenings",
        json={
            "patient_id": patient,
            "instrument": "ucla-3",
            "completed_at": when,
            "answers": LONELY,
        },
    )
    assert screened.status_code == 201, screened.text

    [card] = assert_valid_cards(call(session_client, ehr, hook_call(patient)).json())

    assert card["indicator"] == "warning"
    assert "profile is incomplete" in card["detail"]
    assert "languages" in card["detail"]
    assert "English Circle" in card["detail"]
    assert "Arabic Circle" not in card["detail"]
    assert [s["label"] for s in card["suggestions"]] == ["Refer to English Circle"]


def test_a_complete_profile_is_not_called_incomplete(
    session_client: TestClient[Litestar], client: TestClient[Litestar], ehr: System
) -> None:
    patient = f"pat-{uuid.uuid4()}"
    profile = {
        "languages": ["en"],
        "pain_conditions": ["crps"],
        "age_band": "30-44",
        "location": {"lat": 51.5, "lon": -0.1},
    }
    assert client.put(f"/v1/patients/{patient}", json=profile).status_code == 201
    screen(client, patient, LONELY, datetime.now(UTC) - timedelta(days=2))

    [card] = assert_valid_cards(call(session_client, ehr, hook_call(patient)).json())

    assert "incomplete" not in card["detail"]


def test_no_recent_screening_gives_a_screening_due_card(
    session_client: TestClient[Litestar], client: TestClient[Litestar], ehr: System
) -> None:
    for patient in (f"pat-{uuid.uuid4()}", f"old-{uuid.uuid4()}"):
        if patient.startswith("old"):
            screen(client, patient, LONELY, datetime.now(UTC) - timedelta(days=200))
        response = call(session_client, ehr, hook_call(patient))
        assert response.status_code == 200, response.text
        cards = assert_valid_cards(response.json())
        assert [c["indicator"] for c in cards] == ["info"]
        assert "due" in cards[0]["summary"]
        assert "UCLA-3" in cards[0]["detail"]  # the instruments are named, not linked
        assert smart_links(cards) == [SCREENING_LINK]


def test_a_recent_negative_screen_gives_no_card(
    session_client: TestClient[Litestar], client: TestClient[Litestar], ehr: System
) -> None:
    patient = f"pat-{uuid.uuid4()}"
    screen(client, patient, NOT_LONELY, datetime.now(UTC) - timedelta(days=10))
    response = call(session_client, ehr, hook_call(patient))
    assert response.status_code == 200, response.text
    assert response.json() == {"cards": []}


def test_another_clinics_patient_is_unknown_to_the_ehr(
    session_client: TestClient[Litestar], client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    patient = f"pat-{uuid.uuid4()}"
    screen(client, patient, LONELY, datetime.now(UTC) - timedelta(days=1))
    other = make_clinic()
    issuer = f"https://other-ehr.example.org/{uuid.uuid4()}"
    register(
        session_client, other.name, ["referrals:read"], issuer=issuer, jwks=public_jwks(ec_key())
    )
    cards = call(session_client, System(issuer, other), hook_call(patient)).json()["cards"]
    assert [c["indicator"] for c in cards] == ["info"]


def test_missing_prefetch_is_412_and_bad_calls_are_400(
    session_client: TestClient[Litestar], ehr: System
) -> None:
    patient = f"pat-{uuid.uuid4()}"
    assert call(session_client, ehr, hook_call(patient, with_prefetch=False)).status_code == 412
    null = hook_call(patient, with_prefetch=False, prefetch={"patient": None})
    assert call(session_client, ehr, null).status_code == 412
    wrong = hook_call(
        patient, with_prefetch=False, prefetch={"patient": {"resourceType": "Patient", "id": "x"}}
    )
    assert call(session_client, ehr, wrong).status_code == 400
    assert call(session_client, ehr, hook_call(patient, hook="order-select")).status_code == 400
    no_instance = hook_call(patient)
    del no_instance["hookInstance"]
    assert call(session_client, ehr, no_instance).status_code == 400
    auth_without_server = hook_call(
        patient,
        fhirAuthorization={
            "access_token": "x",
            "token_type": "Bearer",
            "expires_in": 60,
            "scope": "a",
            "subject": "b",
        },
    )
    assert call(session_client, ehr, auth_without_server).status_code == 400
    unknown = session_client.post(
        "/cds-services/nope",
        json=hook_call(patient),
        headers={"Authorization": f"Bearer {cds_jwt(ehr, aud=f'{BASE}/cds-services/nope')}"},
    )
    assert unknown.status_code == 404


def test_refused_cds_jwts(
    session_client: TestClient[Litestar], ehr: System, system: System
) -> None:
    now = int(time.time())
    body = hook_call(f"pat-{uuid.uuid4()}")
    good = claims(ehr.issuer, SERVICE_URL)
    cases = {
        "a Belong token": system.clinic.token,
        "expired": sign({**good, "iat": now - 120, "exp": now - 60}, ec_key(), "ES384"),
        "wrong aud": cds_jwt(ehr, aud=f"{BASE}/cds-services"),
        "no iat": cds_jwt(ehr, iat=None),
        "unknown issuer": cds_jwt(ehr, iss="https://stranger.example.org"),
        "unsigned": unsigned(good),
        "HMAC": hmac_signed(good, b"secret", "HS256"),
        "RS256": __import__("joserfc.jwt", fromlist=["encode"]).encode(
            {"alg": "RS256", "kid": "rsa-1"}, good, rsa_key(), algorithms=["RS256"]
        ),
        "no header": None,
    }
    for name, token in cases.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = session_client.post(f"/cds-services/{SERVICE_ID}", json=body, headers=headers)
        assert response.status_code == 401, (name, response.text)
        assert "bearer" in response.headers["www-authenticate"].lower()
    once = cds_jwt(ehr, alg="RS384")
    assert call(session_client, ehr, body, once).status_code == 200
    assert call(session_client, ehr, body, once).status_code == 401  # replayed jti


def test_a_cds_client_needs_referrals_read(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    issuer = f"https://ehr.example.org/{uuid.uuid4()}"
    register(
        session_client, clinic.name, ["screenings:read"], issuer=issuer, jwks=public_jwks(ec_key())
    )
    response = call(session_client, System(issuer, clinic), hook_call("p-1"))
    assert response.status_code == 403


def test_feedback_is_stored(
    session_client: TestClient[Litestar], ehr: System, clinic: Clinic
) -> None:
    card, suggestion = str(uuid.uuid4()), str(uuid.uuid4())
    feedback = {
        "feedback": [
            {
                "card": card,
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": suggestion}],
                "outcomeTimestamp": "2026-11-25T10:00:00Z",
            },
            {
                "card": card,
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "code": "patient-declined",
                        "display": "Patient declined a referral",
                    },
                    "userComment": "Maybe next time",
                },
                "outcomeTimestamp": "2026-11-25T10:01:00+01:00",
            },
        ]
    }
    for aud in (FEEDBACK_URL, SERVICE_URL):
        response = session_client.post(
            f"/cds-services/{SERVICE_ID}/feedback",
            json=feedback,
            headers={"Authorization": f"Bearer {cds_jwt(ehr, aud=aud)}"},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"recorded": 2}

    async def stored(conn: Any) -> list[Any]:
        query = sa.select(cds_feedback).where(cds_feedback.c.clinic_id == clinic.clinic_id)
        return list((await conn.execute(query)).all())

    rows = run(session_client, stored)
    assert sorted(r.outcome for r in rows) == ["accepted", "accepted", "overridden", "overridden"]
    accepted = next(r for r in rows if r.outcome == "accepted")
    assert accepted.accepted_suggestions == [suggestion] and accepted.card_uuid == card
    overridden = next(r for r in rows if r.outcome == "overridden")
    assert overridden.override_reason["reason"]["code"] == "patient-declined"
    bad = {
        "feedback": [
            {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-25T10:00:00Z"}
        ]
    }
    response = session_client.post(
        f"/cds-services/{SERVICE_ID}/feedback",
        json=bad,
        headers={"Authorization": f"Bearer {cds_jwt(ehr, aud=FEEDBACK_URL)}"},
    )
    assert response.status_code == 422
    naive = {"feedback": [{**feedback["feedback"][1], "outcomeTimestamp": "2026-11-25T10:00:00"}]}
    response = session_client.post(
        f"/cds-services/{SERVICE_ID}/feedback",
        json=naive,
        headers={"Authorization": f"Bearer {cds_jwt(ehr, aud=FEEDBACK_URL)}"},
    )
    assert response.status_code == 400


def test_capability_statement_declares_both(session_client: TestClient[Litestar]) -> None:
    statement = session_client.get("/fhir/metadata").json()
    security = statement["rest"][0]["security"]
    codes = {c["code"] for s in security["service"] for c in s["coding"]}
    assert "SMART-on-FHIR" in codes
    assert "smart-configuration" in security["description"]
    assert "CDS Hooks" in security["description"]


def test_registered_keys_are_public_only(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    async def keys(conn: Any) -> list[Any]:
        return list((await conn.execute(sa.select(client_keys.c.jwks))).scalars())

    for jwks in run(session_client, keys):
        if jwks is not None:
            assert all("d" not in key for key in jwks["keys"])


def test_public_base_url_sets_the_audience_and_the_token_endpoint(
    database_url: str, ehr: System
) -> None:
    from service.app import create_app
    from service.settings import Settings

    public = "https://belong.example.org"
    app = create_app(Settings(database_url=database_url, public_base_url=public))
    with TestClient(app) as proxied:
        config = proxied.get("/.well-known/smart-configuration").json()
        assert config["token_endpoint"] == f"{public}/auth/token"
        body = hook_call(f"pat-{uuid.uuid4()}")
        local = cds_jwt(ehr)
        assert call(proxied, ehr, body, local).status_code == 401
        outside = cds_jwt(ehr, aud=f"{public}/cds-services/{SERVICE_ID}")
        response = call(proxied, ehr, body, outside)
        assert response.status_code == 200, response.text
        due = assert_valid_cards(response.json())
        screening = open_in_belong("screening", "Open in Belong: enter a screening", public)
        assert smart_links(due, public) == [screening]
        patient = f"pat-{uuid.uuid4()}"
        proxied.headers.update(ehr.clinic.headers)
        screen(proxied, patient, LONELY, datetime.now(UTC) - timedelta(days=1))
        outside = cds_jwt(ehr, aud=f"{public}/cds-services/{SERVICE_ID}")
        response = call(proxied, ehr, hook_call(patient), outside)
        assert response.status_code == 200, response.text
        [positive] = assert_valid_cards(response.json())
        assert positive["indicator"] == "warning"
        recommendations = open_in_belong(
            "recommendations", "Open in Belong: recommendations", public
        )
        assert smart_links([positive], public) == [recommendations]


# --------------------------------------------------------------- listing, revoking, rotating


def systems_listed(belong_cli: BelongCli, *args: str) -> dict[str, list[str]]:
    """``belong systems list ARGS``: each system's columns (split on runs of 2+ spaces) by
    issuer, the header under "ISSUER"."""
    run = belong_cli("systems", "list", *args)
    assert run.code == 0, run.err
    rows = [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in run.out]
    return {row[3]: row for row in rows}


def access_token(session_client: TestClient[Litestar], client_assertion: str) -> str:
    response = token_request(session_client, client_assertion, scope="system/AuditEvent.rs")
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_systems_list_shows_each_system_and_its_keys(
    session_client: TestClient[Litestar],
    belong_cli: BelongCli,
    system: System,
    ehr: System,
) -> None:
    url = f"https://keys.example.org/{uuid.uuid4()}.json"
    by_url = register(session_client, system.clinic.name, ["audit:read"], jwks_url=url)
    rows = systems_listed(belong_cli, "--clinic", system.clinic.name)
    assert rows["ISSUER"] == [
        "ID", "CLINIC", "NAME", "ISSUER", "KEYS", "SCOPES",
        "CREATED", "EXPIRES", "ROTATED", "REVOKED",
    ]  # fmt: skip
    assert set(rows) == {"ISSUER", system.issuer, ehr.issuer, by_url}
    assert rows[system.issuer][:2] == [system.issuer, system.clinic.name]  # id = issuer
    assert rows[system.issuer][4] == "jwks:rsa-1,ec-1"
    assert rows[ehr.issuer][4] == "jwks:ec-1,rsa-1"
    assert rows[ehr.issuer][5] == "referrals:read"
    assert rows[by_url][4] == url
    assert rows[ehr.issuer][7:] == ["-", "-", "-"]
    # a system is no bearer-token client, and the clinic's token client is no system
    clients = belong_cli("clients", "list", "--clinic", system.clinic.name)
    assert clients.code == 0
    assert len(clients.out) == 2  # the header and the clinic fixture's own client
    assert not any(system.issuer in line or ehr.issuer in line for line in clients.out)
    ehr_id = rows[ehr.issuer][0]
    for action in ("rotate", "revoke"):
        refused = belong_cli("clients", action, ehr_id)
        assert refused.code == 2
        assert f"belong systems {action}" in refused.err
    token_client = clients.out[1].split()[0]
    refused = belong_cli("systems", "revoke", token_client)
    assert refused.code == 2
    assert "no system" in refused.err


def test_revoking_a_system_refuses_its_access_tokens_and_jwts_within_a_second(
    session_client: TestClient[Litestar], belong_cli: BelongCli, system: System, ehr: System
) -> None:
    token = access_token(session_client, assertion(system))
    assert session_client.get("/v1/audit-events", headers=bearer(token)).status_code == 200
    cached = time.monotonic()
    revoked = belong_cli("systems", "revoke", system.issuer)
    assert revoked.code == 0, revoked.err
    assert seconds_until_refused(session_client, bearer(token), cached) <= 1.3
    refused_client(token_request(session_client, assertion(system)))
    # a CDS client, named by its issuer, is refused at its next call
    body = hook_call(f"pat-{uuid.uuid4()}")
    assert call(session_client, ehr, body).status_code == 200
    assert belong_cli("systems", "revoke", ehr.issuer).code == 0
    assert call(session_client, ehr, body).status_code == 401
    # the clinic's own token is another client, untouched
    assert session_client.get("/v1/audit-events", headers=system.clinic.headers).status_code == 200
    rows = systems_listed(belong_cli, "--clinic", system.clinic.name)
    assert rows[system.issuer][-1] != "-" and rows[ehr.issuer][-1] != "-"


def test_rotating_a_systems_keys_refuses_the_old_key_and_its_access_tokens(
    session_client: TestClient[Litestar], belong_cli: BelongCli, clinic: Clinic, tmp_path: Any
) -> None:
    issuer = register(session_client, clinic.name, ["audit:read"], jwks=public_jwks(ec_key()))
    me = System(issuer, clinic)
    old_token = access_token(session_client, assertion(me))
    assert session_client.get("/v1/audit-events", headers=bearer(old_token)).status_code == 200
    cached = time.monotonic()
    new_keys = tmp_path / "new.json"
    new_keys.write_text(__import__("json").dumps(public_jwks(ec_key("ec-2"))))
    rotated = belong_cli("systems", "rotate", issuer, "--jwks", str(new_keys))
    assert rotated.code == 0, rotated.err
    new_assertion = sign(claims(issuer, TOKEN_URL, sub=issuer), ec_key("ec-2"), "ES384")
    new_token = access_token(session_client, new_assertion)
    assert session_client.get("/v1/audit-events", headers=bearer(new_token)).status_code == 200
    assert seconds_until_refused(session_client, bearer(old_token), cached) <= 1.3
    refused_client(token_request(session_client, assertion(me), scope="system/AuditEvent.rs"))
    row = systems_listed(belong_cli, "--clinic", clinic.name)[issuer]
    assert row[4] == "jwks:ec-2"
    assert row[8] != "-" and row[9] == "-"  # ROTATED, not REVOKED
    private = tmp_path / "private.json"
    private.write_text(
        __import__("json").dumps(
            __import__("joserfc.jwk", fromlist=["KeySet"]).KeySet([ec_key()]).as_dict(private=True)
        )
    )
    refused = belong_cli("systems", "rotate", issuer, "--jwks", str(private))
    assert refused.code == 2
    assert systems_listed(belong_cli, "--clinic", clinic.name)[issuer][4] == "jwks:ec-2"
    unknown = belong_cli("systems", "rotate", "https://nobody.example.org", "--jwks", str(new_keys))
    assert unknown.code == 2
    assert "no system" in unknown.err


def test_rotating_to_the_same_jwks_url_reads_the_keys_again(
    session_client: TestClient[Litestar],
    belong_cli: BelongCli,
    clinic: Clinic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"https://keys.example.org/{uuid.uuid4()}.json"
    published = {"keys": public_jwks(ec_key())}
    monkeypatch.setattr(systems, "fetch_jwks", lambda asked: published["keys"])
    issuer = register(session_client, clinic.name, ["audit:read"], jwks_url=url)
    me = System(issuer, clinic)
    access_token(session_client, assertion(me))
    # the system publishes a new key at the same URL; the old key is cached for minutes
    published["keys"] = public_jwks(ec_key("ec-2"))
    new_assertion = sign(claims(issuer, TOKEN_URL, sub=issuer), ec_key("ec-2"), "ES384")
    refused_client(token_request(session_client, new_assertion, scope="system/AuditEvent.rs"))
    assert belong_cli("systems", "rotate", issuer, "--jwks", url).code == 0
    new_assertion = sign(claims(issuer, TOKEN_URL, sub=issuer), ec_key("ec-2"), "ES384")
    access_token(session_client, new_assertion)
    refused_client(token_request(session_client, assertion(me), scope="system/AuditEvent.rs"))


def test_an_audience_named_in_the_host_header_is_refused(
    session_client: TestClient[Litestar], system: System, ehr: System
) -> None:
    """Without BELONG_PUBLIC_BASE_URL the audience is the listening address: a JWT minted
    for another server is refused even when that server is sent as Host."""
    spoofed = {"Host": "other.example"}
    elsewhere = sign(
        claims(system.issuer, "http://other.example/auth/token", sub=system.issuer),
        ec_key(),
        "ES384",
    )
    form = {
        "grant_type": "client_credentials",
        "scope": ALL_SMART,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": elsewhere,
    }
    refused = session_client.post("/auth/token", data=form, headers={**FORM, **spoofed})
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"
    form["client_assertion"] = assertion(system)
    granted = session_client.post("/auth/token", data=form, headers={**FORM, **spoofed})
    assert granted.status_code == 200, granted.text

    body = hook_call(f"pat-{uuid.uuid4()}")
    for_other = cds_jwt(ehr, aud=f"http://other.example/cds-services/{SERVICE_ID}")
    response = session_client.post(
        f"/cds-services/{SERVICE_ID}",
        json=body,
        headers={"Authorization": f"Bearer {for_other}", **spoofed},
    )
    assert response.status_code == 401, response.text
    response = session_client.post(
        f"/cds-services/{SERVICE_ID}",
        json=body,
        headers={"Authorization": f"Bearer {cds_jwt(ehr)}", **spoofed},
    )
    assert response.status_code == 200, response.text
    cards = assert_valid_cards(response.json())
    for card in cards:
        assert card["source"]["url"].startswith(f"{BASE}/")
    assert smart_links(cards) == [SCREENING_LINK]
