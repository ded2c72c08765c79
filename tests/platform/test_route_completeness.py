"""Checks that walk the app's own route table, so a new route cannot escape them.

Every route is public or needs a scope; every scoped route answers 401 without a token
and 403 with a token lacking its scope; every route holding patient data is audited,
answers 404 to another clinic exactly as to a missing id, and writes an audit event.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar

from service.platform.credentials import SCOPES
from service.platform.secret_links import PATHS

PATIENT_DATA_PREFIXES = (
    "/v1/patients",
    "/v1/screenings",
    "/v1/referrals",
    "/fhir/QuestionnaireResponse",
    "/fhir/Observation",
    "/fhir/ServiceRequest",
    "/fhir/Task",
)
PUBLIC_PREFIXES = (
    "/health",
    "/schema",
    "/fhir/metadata",
    "/v1/instruments",
    "/fhir/Questionnaire",
    # SMART discovery and token endpoint; CDS Hooks discovery (no patient data)
    "/.well-known/smart-configuration",
    "/fhir/.well-known/smart-configuration",
    "/auth/token",
    "/cds-services",
    # The patient's own pages: the secret link in the path is the key (no account)
    "/p/",
)
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def all_operations(app: Litestar) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                if method != "OPTIONS" and not route.path.startswith("/schema"):
                    found.append((method, route.path, handler.opt))
    return sorted(found)


def is_app(path: str) -> bool:
    return path == "/app" or path.startswith("/app/")


def operations(app: Litestar) -> list[tuple[str, str, dict[str, Any]]]:
    """The API's operations (bearer tokens); the clinician app's pages are checked below."""
    return [op for op in all_operations(app) if not is_app(op[1])]


def app_pages(app: Litestar) -> list[tuple[str, str, dict[str, Any]]]:
    return [op for op in all_operations(app) if is_app(op[1])]


APP_PUBLIC_PREFIXES = ("/app/sign-in", "/app/static", "/app/launch")
"""The only pages open without a session: signing in, and the stylesheets and scripts."""
APP_PATIENT_DATA_PREFIXES = ("/app/patients", "/app/referrals", "/app/screenings")


MISSING = "00000000-0000-7000-8000-000000000000"
"""An id that fits every id pattern (UUIDs and FHIR ids) and names nothing."""


def fill(path: str, values: dict[str, str]) -> str:
    return PARAM.sub(lambda m: values.get(m.group(1), MISSING), path)


def test_every_route_is_public_or_scoped(app: Litestar) -> None:
    for method, path, opt in operations(app):
        kind = opt.get("secret_link")
        if kind is not None:
            # Opened by a secret link (the link is the credential): under its kind's path,
            # and audited, the link as actor.
            assert path.startswith(f"{PATHS[kind]}/{{token"), f"{method} {path}"
            assert "audit" in opt, f"{method} {path} must be audited"
            continue
        public = bool(opt.get("exclude_from_auth"))
        assert public or opt.get("scope") in SCOPES, (method, path)
        if public:
            assert path.startswith(PUBLIC_PREFIXES), f"{method} {path} is public"
        if path.startswith(PATIENT_DATA_PREFIXES):
            assert not public and "audit" in opt, f"{method} {path} must be scoped and audited"


def test_scoped_routes_refuse_missing_and_wrong_scope_tokens(
    session_client, make_clinic, app: Litestar
) -> None:
    for method, path, opt in operations(app):
        scope = opt.get("scope")
        if scope is None:
            continue
        url = fill(path, {})
        body = {"content": b"{}", "headers": {"content-type": "application/json"}}
        anonymous = session_client.request(method, url, **body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert "bearer" in anonymous.headers.get("www-authenticate", "").lower()
        others = tuple(s for s in SCOPES if s != scope)
        wrong = make_clinic(scopes=others)
        refused = session_client.request(
            method, url, content=b"{}", headers={**wrong.headers, **body["headers"]}
        )
        assert refused.status_code == 403, (method, path, refused.text)


def test_every_app_page_is_public_or_needs_a_session_and_the_patient_pages_are_audited(
    app: Litestar,
) -> None:
    for method, path, opt in app_pages(app):
        if opt.get("exclude_from_auth"):
            assert path.startswith(APP_PUBLIC_PREFIXES), f"{method} {path} is public"
            continue
        assert opt.get("scope") in (None, *SCOPES), (method, path)
        if path.startswith(APP_PATIENT_DATA_PREFIXES) and method == "GET":
            assert opt.get("scope") and "audit" in opt, (
                f"{method} {path} must be scoped and audited"
            )


def test_app_pages_send_the_signed_out_to_sign_in_and_refuse_a_role_without_the_scope(
    session_client, clinic, app: Litestar
) -> None:
    from tests.signed_in import sign_in

    roles = {
        role: sign_in(session_client, clinic.name, role)
        for role in ("clinician", "coordinator", "admin")
    }
    from service.platform.sessions import ROLE_SCOPES

    for method, path, opt in app_pages(app):
        if opt.get("exclude_from_auth"):
            continue
        url = fill(path, {})
        anonymous = session_client.request(method, url, follow_redirects=False)
        if method == "GET":
            assert anonymous.status_code == 303, (method, path)
            assert anonymous.headers["location"].startswith("/app/sign-in?next=")
        else:
            assert anonymous.status_code == 401, (method, path)
        scope = opt.get("scope")
        for role, user in roles.items():
            if scope is not None and scope not in ROLE_SCOPES[role]:
                refused = (user.get if method == "GET" else user.post)(url)
                assert refused.status_code == 403, (method, path, role)


@pytest.fixture
def owned(client, clinic) -> dict[str, Any]:
    """A patient with a screening, a FHIR QuestionnaireResponse and a referral."""
    patient = "completeness-1"
    assert client.put(f"/v1/patients/{patient}", json={"languages": ["en"]}).status_code == 201
    screening = client.post(
        "/v1/screenings",
        json={
            "patient_id": patient,
            "instrument": "ucla-3",
            "completed_at": "2026-01-05T09:00:00Z",
            "answers": {"1": 3, "2": 3, "3": 3},
        },
    ).json()
    service = client.post(
        "/v1/directory/services",
        json={
            "name": "Completeness Circle",
            "organization": "Test Trust",
            "category": "support-group",
            "modalities": ["online"],
        },
    ).json()
    referral = client.post(
        "/v1/referrals",
        json={
            "patient_id": patient,
            "service_id": service["id"],
            "screening_id": screening["id"],
            "consent": {"given": True, "method": "verbal"},
        },
    ).json()
    qr_id = screening["questionnaire_response"].split("/")[1]
    return {
        "patient": patient,
        "ids": {
            "/v1/patients/{patient_id}": {"patient_id": patient},
            "/v1/patients/{patient_id}/screenings": {"patient_id": patient},
            "/v1/patients/{patient_id}/referrals": {"patient_id": patient},
            "/v1/screenings/{screening_id}": {"screening_id": screening["id"]},
            "/v1/referrals/{referral_id}": {"referral_id": referral["id"]},
            "/fhir/QuestionnaireResponse/{resource_id}": {"resource_id": qr_id},
            "/fhir/Observation/{resource_id}": {"resource_id": screening["observations"][0]["id"]},
            "/fhir/ServiceRequest/{resource_id}": {"resource_id": referral["id"]},
            "/fhir/Task/{resource_id}": {"resource_id": referral["id"]},
        },
    }


def test_patient_data_routes_are_404_to_another_clinic_and_audited(
    session_client, client, clinic, make_clinic, owned, app: Litestar
) -> None:
    stranger = make_clinic()
    for method, path, opt in operations(app):
        template = PARAM.sub(r"{\1}", path)
        values = owned["ids"].get(template)
        if method != "GET" or values is None:
            continue
        url = fill(path, values)
        mine = session_client.get(url, headers=clinic.headers)
        assert mine.status_code == 200, (path, mine.text)
        theirs = session_client.get(url, headers=stranger.headers)
        missing = session_client.get(fill(path, {}), headers=stranger.headers)
        assert theirs.status_code == missing.status_code == 404, (path, theirs.text)
        assert theirs.json().keys() == missing.json().keys()
        action, resource_type = opt["audit"]
        events = session_client.get(
            "/v1/audit-events",
            params={"patient_id": owned["patient"], "limit": 200},
            headers=clinic.headers,
        ).json()["items"]
        assert any(e["action"] == action and e["resource_type"] == resource_type for e in events), (
            path,
            action,
            resource_type,
        )
        stranger_events = session_client.get(
            "/v1/audit-events", params={"limit": 200}, headers=stranger.headers
        ).json()["items"]
        assert all(e["status_code"] == 404 for e in stranger_events), path
