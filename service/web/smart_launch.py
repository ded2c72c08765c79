"""The app's side of SMART App Launch 2.x (EHR launch and standalone launch), the
protocol alone: the EHR's ``.well-known/smart-configuration`` read and checked, the
authorization request (PKCE S256 only, ``aud`` the EHR's FHIR base), the code exchanged for
the token response and its launch context, and the EHR's Patient read when its patient ids
are not Belong's. The id_token is verified as any OpenID Connect sign-in's
(:meth:`RelyingParty.verify`), with the keys the smart-configuration names.

Anything wrong raises :class:`SignInRefused` with a reason safe to show and to log.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.web.oidc import (
    AuthorizationRequest,
    IdentityProvider,
    ProviderMetadata,
    RelyingParty,
    SignInRefused,
    checked_issuer,
    code_challenge,
    with_query,
)

EHR_LAUNCH_SCOPES = ("launch", "openid", "fhirUser")
STANDALONE_SCOPES = ("launch/patient", "openid", "fhirUser")
PATIENT_READ_SCOPE = "patient/Patient.rs"
"""Asked for only when the EHR's Patient resource must be read to find Belong's id."""
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
MAX_CONTEXT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class SmartConfiguration:
    """What the app needs of the EHR's ``.well-known/smart-configuration``."""

    iss: str
    metadata: ProviderMetadata
    """The authorization server as an OpenID provider: its issuer, endpoints and JWKS."""
    capabilities: frozenset[str]


@dataclass(frozen=True, slots=True)
class LaunchContext:
    """The token response's launch context (SMART App Launch 2.x, "Launch context")."""

    id_token: str
    access_token: str | None
    patient: str | None
    encounter: str | None
    need_patient_banner: bool
    smart_style_url: str | None
    app_context: str | None


def _url(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or len(value) > 2000:
        raise SignInRefused(f"the EHR's smart-configuration has no {name}")
    try:
        checked_issuer(value.split("?", 1)[0])
    except ValueError:
        raise SignInRefused(f"the EHR's {name} is not an https URL") from None
    return value


def parse_smart_configuration(document: Any, iss: str) -> SmartConfiguration:
    """The EHR's smart-configuration, checked: PKCE with S256 and never ``plain`` (SMART App
    Launch 2.x forbids it), OpenID Connect (an ``issuer`` and its ``jwks_uri``)."""
    if not isinstance(document, dict):
        raise SignInRefused("the EHR's smart-configuration is not a JSON object")
    methods = document.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        raise SignInRefused("the EHR's authorization server does not offer PKCE with S256")
    if "plain" in methods:
        raise SignInRefused(
            "the EHR's authorization server offers plain PKCE, which SMART App Launch forbids"
        )
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise SignInRefused("the EHR's authorization server does not offer the code flow")
    issuer = _url(document, "issuer")
    auth_methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    if not isinstance(auth_methods, list):
        raise SignInRefused("the EHR's token_endpoint_auth_methods_supported is not a list")
    capabilities = document.get("capabilities", [])
    if not isinstance(capabilities, list):
        raise SignInRefused("the EHR's capabilities are not a list")
    metadata = ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_url(document, "authorization_endpoint"),
        token_endpoint=_url(document, "token_endpoint"),
        jwks_uri=_url(document, "jwks_uri"),
        token_endpoint_auth_methods=tuple(m for m in auth_methods if isinstance(m, str)),
        authorization_response_iss=False,
    )
    return SmartConfiguration(
        iss, metadata, frozenset(c for c in capabilities if isinstance(c, str))
    )


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CONTEXT_CHARS:
        raise SignInRefused(f"the EHR's launch context has a bad {name}")
    return value


def launch_context(body: Mapping[str, Any]) -> LaunchContext:
    """The token response's id_token and launch context (patient, encounter, banner,
    style, appContext), each checked for its type."""
    id_token = body.get("id_token")
    if not isinstance(id_token, str):
        raise SignInRefused("the EHR's token response has no id_token (was openid granted?)")
    patient = _text(body, "patient")
    if patient is not None and not FHIR_ID.fullmatch(patient):
        raise SignInRefused("the EHR's patient is not a FHIR id")
    banner = body.get("need_patient_banner", True)
    if not isinstance(banner, bool):
        raise SignInRefused("the EHR's need_patient_banner is not true or false")
    app_context = body.get("appContext")
    if app_context is not None and not isinstance(app_context, str):
        # CDS Hooks passes appContext as a string; anything else names no purpose here.
        app_context = None
    return LaunchContext(
        id_token=id_token,
        access_token=_text(body, "access_token"),
        patient=patient,
        encounter=_text(body, "encounter"),
        need_patient_banner=banner,
        smart_style_url=_text(body, "smart_style_url"),
        app_context=app_context if app_context and len(app_context) <= 200 else None,
    )


class SmartLaunchClient:
    """The app as a SMART client of its clinics' EHRs, over the relying party's HTTP
    client and key cache."""

    def __init__(self, relying_party: RelyingParty) -> None:
        self.rp = relying_party

    async def configuration(self, iss: str) -> SmartConfiguration:
        url = iss.rstrip("/") + "/.well-known/smart-configuration"
        async with self.rp.http_client() as client:
            status, document = await self.rp.read_json(client, "smart-configuration", "GET", url)
        if status != 200:
            raise SignInRefused(f"the EHR's smart-configuration answered {status}")
        return parse_smart_configuration(document, iss)

    @staticmethod
    def authorization_request(
        config: SmartConfiguration,
        client_id: str,
        redirect_uri: str,
        *,
        launch: str | None,
        read_patient: bool,
    ) -> AuthorizationRequest:
        """The request for an EHR launch (``launch`` given) or a standalone one."""
        wanted = "launch-ehr" if launch is not None else "launch-standalone"
        if config.capabilities and wanted not in config.capabilities:
            raise SignInRefused(f"the EHR does not offer {wanted.replace('-', ' ')}")
        scopes = list(EHR_LAUNCH_SCOPES if launch is not None else STANDALONE_SCOPES)
        if read_patient:
            scopes.append(PATIENT_READ_SCOPE)
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        code_verifier = secrets.token_urlsafe(48)
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "aud": config.iss,
            "code_challenge": code_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        if launch is not None:
            params["launch"] = launch
        url = with_query(config.metadata.authorization_endpoint, params)
        return AuthorizationRequest(url, state, nonce, code_verifier)

    async def token(
        self,
        config: SmartConfiguration,
        client: IdentityProvider,
        *,
        code: str,
        code_verifier: str,
        redirect_uri: str,
    ) -> LaunchContext:
        body = await self.rp.token_response(
            client,
            config.metadata,
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
        )
        return launch_context(body)

    async def patient_identifier(
        self, iss: str, patient: str, access_token: str | None, system: str
    ) -> str:
        """Belong's id of the EHR's patient: the value of the Patient's identifier of
        ``system``, read from the EHR with the launch's access token."""
        if access_token is None:
            raise SignInRefused("the EHR gave no access token to read the patient")
        url = f"{iss.rstrip('/')}/Patient/{patient}"
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/fhir+json"}
        async with self.rp.http_client() as client:
            status, resource = await self.rp.read_json(
                client, "Patient resource", "GET", url, headers=headers
            )
        if status != 200 or not isinstance(resource, dict):
            raise SignInRefused(f"the EHR's Patient could not be read ({status})")
        identifiers = resource.get("identifier")
        for identifier in identifiers if isinstance(identifiers, list) else []:
            if isinstance(identifier, dict) and identifier.get("system") == system:
                value = identifier.get("value")
                if isinstance(value, str) and FHIR_ID.fullmatch(value):
                    return value
                raise SignInRefused("the EHR's patient identifier is not a Belong patient id")
        raise SignInRefused("the EHR's patient has no identifier of the configured system")
