"""SMART Backend Services: a second way for systems to authenticate.

A system registered with its public keys (``belong clients create --jwks FILE``, or a
JWKS URL) posts ``grant_type=client_credentials`` with a ``private_key_jwt`` assertion
(RS384 or ES384, ``iss`` = ``sub`` = its client_id, ``aud`` = the token URL, at most five
minutes to live, a ``jti`` never used before) and gets an access token.

Access tokens are random (``bat_…``), stored only as a SHA-256 with their expiry, and live
300 seconds; there are no refresh tokens. They carry SMART ``system/`` scopes, mapped onto
Belong's scopes (a client is granted only what it was registered with):

| SMART scope (v2, v1)                                   | Belong scope       |
|--------------------------------------------------------|--------------------|
| ``system/Observation.rs`` / ``.read``                  | ``screenings:read``  |
| ``system/QuestionnaireResponse.rs`` / ``.read``        | ``screenings:read``  |
| ``system/QuestionnaireResponse.cud`` / ``.write``      | ``screenings:write`` |
| ``system/ServiceRequest.rs``, ``system/Task.rs`` / ``.read``  | ``referrals:read``  |
| ``system/ServiceRequest.cud``, ``system/Task.cud`` / ``.write`` | ``referrals:write`` |
| ``system/HealthcareService.cud`` / ``.write``          | ``directory:write``  |
| ``system/AuditEvent.rs`` / ``.read``                   | ``audit:read``       |

v2 permissions may be any in-order subset of ``cruds`` (``r``, ``s``, ``rs``, ``c``,
``cud``...): read letters (r, s) need the read scope, write letters (c, u, d) the write
scope. Token endpoint errors follow RFC 6749 (``{"error", "error_description"}``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide

from service.platform.auth import PUBLIC
from service.platform.database import Database
from service.platform.documented import JSON, documented
from service.platform.errors import ApiError, FieldError
from service.platform.jwt import JwtRefused
from service.platform.origin import public_origin
from service.systems.model import supported_scopes
from service.systems.service import ACCESS_TOKEN_SECONDS, ScopesRefused, SmartTokens

TOKEN_PATH = "/auth/token"  # noqa: S105 - a path, not a secret
FORM = "application/x-www-form-urlencoded"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenResponse(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class OAuthError(msgspec.Struct, omit_defaults=True):
    error: str
    error_description: str | None = None


class SmartConfiguration(msgspec.Struct):
    token_endpoint: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    scopes_supported: list[str]
    response_types_supported: list[str]
    capabilities: list[str]
    code_challenge_methods_supported: list[str]
    """Empty: Belong has no authorization endpoint, only client_credentials."""


def oauth_error(status: int, error: str, description: str) -> Response[OAuthError]:
    return Response(
        OAuthError(error, description),
        status_code=status,
        media_type="application/json",
        headers=NO_STORE,
    )


async def form_only(request: Request[Any, Any, Any]) -> None:
    """Replaces the app's JSON-only check for the token endpoint (RFC 6749: a form)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise ApiError(
            415,
            f"Send the token request as {FORM}",
            [FieldError("Content-Type", f"{content_type or 'missing'} is not accepted", "media")],
        )


def configuration(base: str) -> SmartConfiguration:
    return SmartConfiguration(
        token_endpoint=base + TOKEN_PATH,
        grant_types_supported=["client_credentials"],
        token_endpoint_auth_methods_supported=["private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported=["RS384", "ES384"],
        scopes_supported=supported_scopes(),
        response_types_supported=["token"],
        capabilities=["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        code_challenge_methods_supported=[],
    )


TOKEN_FORM = {
    "type": "object",
    "description": (
        "RFC 6749 client_credentials with a private_key_jwt client assertion (RFC 7523): "
        "a JWT signed with RS384 or ES384, iss = sub = the client_id, aud = the token URL, "
        "exp at most 300 seconds ahead, a jti never used before."
    ),
    "required": ["grant_type", "scope", "client_assertion_type", "client_assertion"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "scope": {
            "type": "string",
            "description": "Space-separated system/ scopes (see scopes_supported)",
            "pattern": "^[!#-\\[\\]-~]+( [!#-\\[\\]-~]+)*$",
            "maxLength": 2000,
        },
        "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
        "client_assertion": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*$",
            "maxLength": 8192,
        },
    },
}
"""The token request: a form, which Litestar cannot describe from the handler."""


def provide_tokens(db: NamedDependency[Database]) -> SmartTokens:
    return SmartTokens(db)


class SmartController(Controller):
    tags = ["smart"]
    opt = PUBLIC
    dependencies = {"tokens": Provide(provide_tokens, sync_to_thread=False)}

    @get(
        "/.well-known/smart-configuration",
        operation_id="smart_configuration",
        summary="SMART Backend Services discovery",
    )
    async def configuration(self, request: Request[Any, Any, Any]) -> SmartConfiguration:
        return configuration(public_origin(request))

    @get(
        "/fhir/.well-known/smart-configuration",
        operation_id="fhir_smart_configuration",
        summary="SMART Backend Services discovery, at the FHIR base",
        opt=documented(bodies={200: (JSON, SmartConfiguration)}, plain_json=True),
    )
    async def fhir_configuration(self, request: Request[Any, Any, Any]) -> SmartConfiguration:
        return configuration(public_origin(request))

    @post(
        TOKEN_PATH,
        operation_id="smart_token",
        summary="SMART Backend Services token endpoint (client_credentials, private_key_jwt)",
        description=(
            "A form: grant_type=client_credentials, scope=system/… scopes, "
            f"client_assertion_type={ASSERTION_TYPE} and client_assertion, a JWT signed "
            "with RS384 or ES384 by a key the client registered. Answers an access token "
            f"of {ACCESS_TOKEN_SECONDS} seconds; errors as RFC 6749 JSON."
        ),
        before_request=form_only,
        status_code=200,
        opt=documented(
            errors={401},
            request=TOKEN_FORM,
            request_media=(FORM,),
            bodies={200: (JSON, TokenResponse), 400: (JSON, OAuthError), 401: (JSON, OAuthError)},
        ),
    )
    async def token(
        self, request: Request[Any, Any, Any], tokens: NamedDependency[SmartTokens]
    ) -> Response[Any]:
        form = await request.form()
        fields: dict[str, str] = {}
        for name in ("grant_type", "scope", "client_assertion_type", "client_assertion"):
            values = form.getall(name) if name in form else []
            if len(values) > 1:
                return oauth_error(400, "invalid_request", f"{name} is repeated")
            if values:
                if not isinstance(values[0], str):
                    return oauth_error(400, "invalid_request", f"{name} is not text")
                fields[name] = values[0]
        if fields.get("grant_type") != "client_credentials":
            if "grant_type" not in fields:
                return oauth_error(400, "invalid_request", "grant_type is required")
            return oauth_error(400, "unsupported_grant_type", "only client_credentials")
        if fields.get("client_assertion_type") != ASSERTION_TYPE:
            return oauth_error(
                400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}"
            )
        if not fields.get("client_assertion"):
            return oauth_error(400, "invalid_request", "client_assertion is required")
        if not fields.get("scope", "").strip():
            return oauth_error(400, "invalid_request", "scope is required")
        try:
            issued = await tokens.issue(
                fields["client_assertion"], public_origin(request) + TOKEN_PATH, fields["scope"]
            )
        except JwtRefused as exc:
            return oauth_error(401, "invalid_client", f"the client assertion is refused: {exc}")
        except ScopesRefused:
            return oauth_error(
                400,
                "invalid_scope",
                "none of the requested scopes can be granted to this client "
                f"(supported: {' '.join(supported_scopes())})",
            )
        return Response(
            TokenResponse(
                access_token=issued.token,
                token_type="bearer",  # noqa: S106 - the OAuth token type, not a secret
                expires_in=ACCESS_TOKEN_SECONDS,
                scope=" ".join(issued.granted),
            ),
            headers=NO_STORE,
        )
