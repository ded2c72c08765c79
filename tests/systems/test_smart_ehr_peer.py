"""The test EHR (tests/smart_ehr.py) does what the SMART App Launch tests rely on: driven here
as a SMART client of its own with httpx (no Belong), through its real authorization server
(oidc-provider), its login and consent forms, its token endpoint and its FHIR server."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from tests.smart_ehr import (
    CLIENT_SECRET,
    CLINICIAN,
    CONFIDENTIAL_CLIENT_ID,
    PATIENTS,
    PUBLIC_CLIENT_ID,
    TestEhr,
    running_ehr,
    smart_clients,
)
from tests.web.conftest import sign_in_at_provider

# A loopback redirect URI, as Belong's own under test; never opened (the sign-in stops there).
REDIRECT_URI = "http://127.0.0.1:9/app/launch/callback"
EHR_LAUNCH_SCOPE = "launch openid fhirUser"
STANDALONE_SCOPE = "launch/patient openid fhirUser"


@pytest.fixture(scope="module")
def ehr() -> Iterator[TestEhr]:
    with running_ehr(clients=smart_clients(REDIRECT_URI)) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_ehr(ehr: TestEhr) -> Iterator[None]:
    yield
    ehr.reset()


def smart_configuration(fhir_base: str) -> dict[str, Any]:
    response = httpx.get(f"{fhir_base}/.well-known/smart-configuration")
    assert response.status_code == 200, response.text
    configuration: dict[str, Any] = response.json()
    return configuration


class Authorization:
    """One authorization request of a SMART client: its PKCE verifier, state and nonce, and
    the query the EHR redirected back with. ``aud``: None for the EHR's FHIR base, "" for
    none at all."""

    def __init__(
        self,
        ehr: TestEhr,
        scope: str,
        *,
        client_id: str = PUBLIC_CLIENT_ID,
        aud: str | None = None,
        **extra: str,
    ) -> None:
        self.client_id = client_id
        self.verifier = secrets.token_urlsafe(48)
        self.state = secrets.token_urlsafe(24)
        self.nonce = secrets.token_urlsafe(16)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest())
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": self.state,
            "nonce": self.nonce,
            "aud": ehr.fhir_base if aud is None else aud,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            **extra,
        }
        if not params["aud"]:
            del params["aud"]
        query = httpx.QueryParams(params)
        endpoint = smart_configuration(ehr.fhir_base)["authorization_endpoint"]
        self.returned = sign_in_at_provider(
            f"{endpoint}?{query}", CLINICIAN["sub"], redirect_uri=REDIRECT_URI
        )

    def redeem(self, ehr: TestEhr) -> dict[str, Any]:
        """The token response for the code, which must have come back with our state."""
        assert self.returned.get("state") == self.state, self.returned
        assert "code" in self.returned, self.returned
        form = {
            "grant_type": "authorization_code",
            "code": self.returned["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": self.verifier,
        }
        auth: tuple[str, str] | None = None
        if self.client_id == CONFIDENTIAL_CLIENT_ID:
            auth = (CONFIDENTIAL_CLIENT_ID, CLIENT_SECRET)
        else:
            form["client_id"] = self.client_id
        endpoint = smart_configuration(ehr.fhir_base)["token_endpoint"]
        response = httpx.post(endpoint, data=form, auth=auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def published_keys(ehr: TestEhr) -> KeySet:
    jwks_uri = smart_configuration(ehr.fhir_base)["jwks_uri"]
    return KeySet.import_key_set(httpx.get(jwks_uri).json())


def verified_claims(ehr: TestEhr, id_token: str) -> dict[str, Any]:
    """The id_token's claims, its RS256 signature checked against the published JWKS."""
    return dict(jwt.decode(id_token, published_keys(ehr), algorithms=["RS256"]).claims)


def read_patient(ehr: TestEhr, patient_id: str, access_token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {access_token}"} if access_token else {}
    return httpx.get(f"{ehr.fhir_base}/Patient/{patient_id}", headers=headers)


def test_smart_configuration_names_the_authorization_server(ehr: TestEhr) -> None:
    configuration = smart_configuration(ehr.fhir_base)
    discovery = httpx.get(f"{ehr.issuer}/.well-known/openid-configuration").json()

    assert configuration["issuer"] == ehr.issuer == discovery["issuer"]
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert configuration[endpoint] == discovery[endpoint]
    assert configuration["code_challenge_methods_supported"] == ["S256"]
    assert configuration["response_types_supported"] == ["code"]
    assert {"launch-ehr", "launch-standalone", "context-banner", "sso-openid-connect"} <= set(
        configuration["capabilities"]
    )
    assert {"openid", "fhirUser", "launch", "launch/patient"} <= set(
        configuration["scopes_supported"]
    )
    assert "none" in configuration["token_endpoint_auth_methods_supported"]
    metadata = httpx.get(f"{ehr.fhir_base}/metadata").json()
    assert metadata["resourceType"] == "CapabilityStatement"
    assert metadata["fhirVersion"] == "4.0.1"


def test_the_plain_fhir_base_offers_plain_pkce(ehr: TestEhr) -> None:
    configuration = smart_configuration(ehr.plain_fhir_base)

    assert "plain" in configuration["code_challenge_methods_supported"]
    assert configuration["issuer"] == ehr.issuer
    assert httpx.get(f"{ehr.plain_fhir_base}/metadata").status_code == 200


def test_an_ehr_launch_carries_its_context_into_the_token_response(ehr: TestEhr) -> None:
    launch = ehr.new_launch(patient="p-1", appContext="recommendations", need_patient_banner=False)

    authorization = Authorization(ehr, EHR_LAUNCH_SCOPE, launch=launch)
    tokens = authorization.redeem(ehr)

    assert tokens["patient"] == "p-1"
    assert tokens["appContext"] == "recommendations"
    assert tokens["need_patient_banner"] is False
    assert "encounter" not in tokens
    assert set(tokens["scope"].split()) == set(EHR_LAUNCH_SCOPE.split())
    claims = verified_claims(ehr, tokens["id_token"])
    assert claims["iss"] == ehr.issuer
    assert claims["aud"] == PUBLIC_CLIENT_ID
    assert claims["nonce"] == authorization.nonce
    assert claims["sub"] == CLINICIAN["sub"]
    assert claims["fhirUser"] == "Practitioner/123"

    patient = read_patient(ehr, "p-1", tokens["access_token"])
    assert patient.status_code == 200, patient.text
    assert patient.json()["identifier"] == PATIENTS["p-1"]
    assert read_patient(ehr, "p-1", None).status_code == 401
    assert read_patient(ehr, "p-1", "not-a-token-of-this-ehr").status_code == 401
    assert read_patient(ehr, "p-404", tokens["access_token"]).status_code == 404


def test_a_confidential_client_gets_the_banner_by_default(ehr: TestEhr) -> None:
    launch = ehr.new_launch(patient="p-2", encounter="e-7", smart_style_url="https://s.test/s")

    tokens = Authorization(
        ehr, EHR_LAUNCH_SCOPE, client_id=CONFIDENTIAL_CLIENT_ID, launch=launch
    ).redeem(ehr)

    assert tokens["patient"] == "p-2"
    assert tokens["encounter"] == "e-7"
    assert tokens["smart_style_url"] == "https://s.test/s"
    assert tokens["need_patient_banner"] is True
    assert verified_claims(ehr, tokens["id_token"])["aud"] == CONFIDENTIAL_CLIENT_ID


def test_a_launch_without_the_launch_scope_gets_no_context(ehr: TestEhr) -> None:
    launch = ehr.new_launch(patient="p-1")

    tokens = Authorization(ehr, "openid fhirUser", launch=launch).redeem(ehr)

    assert "patient" not in tokens
    assert "id_token" in tokens


@pytest.mark.parametrize(
    ("aud", "launch"),
    [
        ("http://127.0.0.1:1/fhir", "made"),
        ("", "made"),
        (None, "not-a-launch-of-this-ehr"),
    ],
    ids=["wrong aud", "no aud", "unknown launch"],
)
def test_the_authorization_server_refuses(ehr: TestEhr, aud: str | None, launch: str) -> None:
    launch_id = ehr.new_launch(patient="p-1") if launch == "made" else launch
    extra: dict[str, str] = {"launch": launch_id}
    authorization = Authorization(ehr, EHR_LAUNCH_SCOPE, aud=aud, **extra)

    assert authorization.returned["error"] == "invalid_request"
    assert "code" not in authorization.returned
    assert authorization.returned["state"] == authorization.state


def test_a_reset_forgets_the_launches(ehr: TestEhr) -> None:
    launch = ehr.new_launch(patient="p-1")
    ehr.reset()

    authorization = Authorization(ehr, EHR_LAUNCH_SCOPE, launch=launch)

    assert authorization.returned["error"] == "invalid_request"


def test_a_standalone_launch_gets_the_standalone_patient(ehr: TestEhr) -> None:
    assert Authorization(ehr, STANDALONE_SCOPE).redeem(ehr)["patient"] == "p-2"

    ehr.set_standalone(patient="p-1", need_patient_banner=False)
    tokens = Authorization(ehr, STANDALONE_SCOPE).redeem(ehr)
    assert tokens["patient"] == "p-1"
    assert tokens["need_patient_banner"] is False

    ehr.reset()
    assert Authorization(ehr, STANDALONE_SCOPE).redeem(ehr)["patient"] == "p-2"


def test_a_tampered_id_token_still_verifies_and_only_once(ehr: TestEhr) -> None:
    ehr.tamper_next_id_token(
        iss="http://127.0.0.1:1", aud="another-app", nonce="not-yours", exp_offset=-3600
    )

    tokens = Authorization(ehr, EHR_LAUNCH_SCOPE, launch=ehr.new_launch(patient="p-1")).redeem(ehr)

    claims = verified_claims(ehr, tokens["id_token"])
    assert claims["iss"] == "http://127.0.0.1:1"
    assert claims["aud"] == "another-app"
    assert claims["nonce"] == "not-yours"
    now = time.time()
    assert claims["exp"] < now - 3500
    assert claims["iat"] < claims["exp"]
    assert claims["fhirUser"] == "Practitioner/123"
    assert tokens["patient"] == "p-1"

    untouched = Authorization(ehr, EHR_LAUNCH_SCOPE, launch=ehr.new_launch(patient="p-1"))
    untouched_claims = verified_claims(ehr, untouched.redeem(ehr)["id_token"])
    assert untouched_claims["iss"] == ehr.issuer
    assert untouched_claims["nonce"] == untouched.nonce
    assert untouched_claims["exp"] > now


def test_a_tampered_id_token_can_lose_claims_or_its_key(ehr: TestEhr) -> None:
    ehr.tamper_next_id_token(drop=["nonce"])
    dropped = Authorization(ehr, "openid fhirUser").redeem(ehr)
    assert "nonce" not in verified_claims(ehr, dropped["id_token"])

    ehr.tamper_next_id_token(drop=True)
    assert "id_token" not in Authorization(ehr, "openid fhirUser").redeem(ehr)

    ehr.tamper_next_id_token(unpublished_key=True)
    foreign = Authorization(ehr, "openid fhirUser").redeem(ehr)
    with pytest.raises(BadSignatureError):
        verified_claims(ehr, foreign["id_token"])


def test_the_ehr_page_frames_the_app_on_a_new_launch(ehr: TestEhr) -> None:
    app_launch_url = "http://127.0.0.1:9/app/launch"
    opened = httpx.get(
        f"{ehr.origin}/ehr/launch",
        params={"patient": "p-1", "app": app_launch_url, "appContext": "screening due"},
    )
    assert opened.status_code == 302
    page = httpx.get(opened.headers["location"])

    assert page.status_code == 200
    assert "content-security-policy" not in page.headers
    assert "x-frame-options" not in page.headers
    assert "MRN-0001" in page.text
    src = re.search(r'<iframe title="Belong" src="([^"]+)"', page.text)
    assert src is not None, page.text
    framed = urlsplit(unescape(src.group(1)))
    assert f"{framed.scheme}://{framed.netloc}{framed.path}" == app_launch_url
    query = {name: values[0] for name, values in parse_qs(framed.query).items()}
    assert query["iss"] == ehr.fhir_base

    tokens = Authorization(ehr, EHR_LAUNCH_SCOPE, launch=query["launch"]).redeem(ehr)
    assert tokens["patient"] == "p-1"
    assert tokens["appContext"] == "screening due"


def test_launch_page_puts_the_launch_in_the_frame(ehr: TestEhr) -> None:
    page = httpx.get(ehr.launch_page("http://127.0.0.1:9/app/launch?from=ehr", patient="p-2"))

    src = re.search(r'<iframe title="Belong" src="([^"]+)"', page.text)
    assert src is not None, page.text
    query = parse_qs(urlsplit(unescape(src.group(1))).query)
    assert query["from"] == ["ehr"]
    assert (
        Authorization(ehr, EHR_LAUNCH_SCOPE, launch=query["launch"][0]).redeem(ehr)["patient"]
        == "p-2"
    )


def test_a_launch_needs_a_patient(ehr: TestEhr) -> None:
    response = httpx.post(f"{ehr.origin}/control/launch", json={"appContext": "x"})

    assert response.status_code == 400
    assert "patient" in response.json()["error"]
