"""Signing in with the clinic's OpenID provider: the relying party's side of OpenID Connect's
authorization code flow with PKCE (S256).

A clinic's :class:`IdentityProvider` names the issuer, Belong's client id there, the client
secret by reference (``env:VARIABLE`` or ``file:/path``, never the secret itself), the extra
scopes, and which claim of the id_token holds the user's role. :class:`RelyingParty` reads
the provider's discovery document (its ``issuer`` must be the configured one exactly) and its
JWKS, each kept a few minutes per issuer; builds the authorization request (state, nonce and
code verifier the caller keeps server-side); exchanges the code at the token endpoint; and
verifies the id_token: an RS256 or ES256 signature by a key of the provider's JWKS (fetched
again once for a kid it does not hold), ``iss``, ``aud`` (and ``azp``), ``exp``/``iat`` and
the ``nonce``. Anything wrong raises :class:`SignInRefused` with a reason that is safe to
show and to log: it never holds a token, a code or a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from service.platform.sessions import ROLES

ALGORITHMS = ("RS256", "ES256")
CURVES = {"ES256": "P-256"}
CACHE_SECONDS = 300.0
"""How long a provider's discovery document and JWKS are kept before they are read again."""
LEEWAY_SECONDS = 60
"""Tolerance for clocks that disagree a little, on ``exp`` and ``iat``."""
HTTP_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 512 * 1024
MAX_ID_TOKEN_CHARS = 16 * 1024
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
ROLE_PRECEDENCE = tuple(reversed(ROLES))
"""Belong's roles, the most able first: a user whose claim maps to several gets the first."""
DEFAULT_ROLE_MAP = {role: role for role in ROLE_PRECEDENCE}
DEFAULT_ROLE_CLAIM = "belong_role"
ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class SignInRefused(Exception):
    """The sign-in cannot go on; ``reason`` says why, and holds no token or secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SecretUnavailable(SignInRefused):
    """The client secret's reference cannot be read (a configuration error of Belong's)."""


def resolve_secret(reference: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret a reference names: ``env:VARIABLE`` (its value) or ``file:/path`` (the
    file's content, less a final newline)."""
    kind, _, where = reference.partition(":")
    if kind == "env" and where:
        value = (os.environ if environ is None else environ).get(where)
        if not value:
            raise SecretUnavailable(f"the environment variable {where} is not set")
        return value
    if kind == "file" and where:
        try:
            value = Path(where).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            raise SecretUnavailable(f"the secret file {where} cannot be read") from None
        if not value:
            raise SecretUnavailable(f"the secret file {where} is empty")
        return value
    raise SecretUnavailable("a secret reference is env:VARIABLE or file:/path")


def checked_secret_ref(reference: str) -> str:
    """A reference of the right form (whether it can be read now is not checked)."""
    kind, _, where = reference.partition(":")
    if kind not in ("env", "file") or not where:
        raise ValueError("a secret reference is env:VARIABLE or file:/path")
    if kind == "env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", where):
        raise ValueError(f"{where!r} is not an environment variable's name")
    if kind == "file" and not where.startswith("/"):
        raise ValueError("a secret file is given by its absolute path (file:/run/secrets/x)")
    return reference


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_issuer(issuer: str) -> str:
    """An issuer URL: https (http only on the loopback), no query or fragment."""
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or not parts.hostname:
        raise ValueError("an issuer is an https URL without query or fragment")
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname)):
        raise ValueError("an issuer is an https URL (http only on the loopback, for tests)")
    return issuer


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    """A clinic's OpenID provider, as Belong is registered there."""

    issuer: str
    client_id: str
    secret_ref: str | None
    """``env:VARIABLE`` or ``file:/path``; None for a public client (PKCE alone)."""
    role_claim: str = DEFAULT_ROLE_CLAIM
    """The id_token claim holding the role: a name, or a dotted path into nested objects
    (``realm_access.roles``) when no claim has the name itself."""
    role_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ROLE_MAP))
    """The provider's role values -> Belong's roles."""
    scopes: tuple[str, ...] = ()
    """Requested beside ``openid``."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_endpoint_auth_methods: tuple[str, ...]
    authorization_response_iss: bool
    """Whether the provider names itself in its redirect (RFC 9207's ``iss`` parameter)."""


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send the browser, and what to keep server-side until it comes back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    issuer: str
    subject: str
    claims: dict[str, Any]


def code_challenge(code_verifier: str) -> str:
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _endpoint(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise SignInRefused(f"the provider's discovery document has no {name}")
    try:
        checked_issuer(value.split("?", 1)[0])
    except ValueError:
        raise SignInRefused(f"the provider's {name} is not an https URL") from None
    return value


def parse_metadata(document: Any, issuer: str) -> ProviderMetadata:
    """The discovery document of ``issuer``, checked for what this flow needs."""
    if not isinstance(document, dict):
        raise SignInRefused("the provider's discovery document is not a JSON object")
    if document.get("issuer") != issuer:
        raise SignInRefused("the provider's discovery document names another issuer")
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise SignInRefused("the provider does not offer the authorization code flow")
    challenge_methods = document.get("code_challenge_methods_supported")
    if challenge_methods is not None and (
        not isinstance(challenge_methods, list) or "S256" not in challenge_methods
    ):
        raise SignInRefused("the provider does not support PKCE with S256")
    auth_methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    if not isinstance(auth_methods, list):
        raise SignInRefused("the provider's token_endpoint_auth_methods_supported is not a list")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_endpoint(document, "authorization_endpoint"),
        token_endpoint=_endpoint(document, "token_endpoint"),
        jwks_uri=_endpoint(document, "jwks_uri"),
        token_endpoint_auth_methods=tuple(m for m in auth_methods if isinstance(m, str)),
        authorization_response_iss=document.get("authorization_response_iss_parameter_supported")
        is True,
    )


def signing_keys(jwks: Any) -> KeySet:
    """The provider's public signature keys (RSA and EC); others in the set are skipped."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise SignInRefused("the provider's JWKS is not a JSON object with a keys list")
    usable = [
        key
        for key in jwks["keys"]
        if isinstance(key, dict)
        and key.get("kty") in ("RSA", "EC")
        and key.get("use", "sig") == "sig"
        and "d" not in key
    ]
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError, KeyError):
        raise SignInRefused("the provider's JWKS cannot be read") from None


def _segment(part: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SignInRefused("the id_token is malformed") from None
    if not isinstance(value, dict):
        raise SignInRefused("the id_token is malformed")
    return value


def id_token_header(id_token: str) -> dict[str, Any]:
    if (
        not isinstance(id_token, str)
        or len(id_token) > MAX_ID_TOKEN_CHARS
        or not id_token.isascii()
        or id_token.count(".") != 2
    ):
        raise SignInRefused("the id_token is malformed")
    header = _segment(id_token.split(".", 1)[0])
    if header.get("alg") not in ALGORITHMS:
        raise SignInRefused(f"the id_token's alg {header.get('alg')!r} is not accepted")
    return header


def _candidates(keys: KeySet, header: Mapping[str, Any]) -> list[RSAKey | ECKey]:
    alg = header["alg"]
    wanted = "RSA" if alg.startswith("RS") else "EC"
    found: list[RSAKey | ECKey] = []
    for key in keys.keys:
        if not isinstance(key, RSAKey | ECKey) or key.key_type != wanted:
            continue
        if header.get("kid") is not None and key.kid != header["kid"]:
            continue
        if key.get("alg") not in (None, alg):
            continue
        if alg in CURVES and key.get("crv") != CURVES[alg]:
            continue
        found.append(key)
    return found


def verify_id_token(
    id_token: str,
    keys: KeySet,
    provider: IdentityProvider,
    *,
    nonce: str,
    now: float | None = None,
) -> VerifiedIdentity:
    """The id_token's claims once its signature and claims hold; :class:`SignInRefused`
    otherwise."""
    header = id_token_header(id_token)
    claims: dict[str, Any] | None = None
    for key in _candidates(keys, header):
        try:
            claims = dict(jwt.decode(id_token, key, algorithms=[header["alg"]]).claims)
            break
        except (JoseError, ValueError, TypeError):
            continue
    if claims is None:
        raise SignInRefused("the id_token's signature does not verify with the provider's keys")
    now = time.time() if now is None else now
    if claims.get("iss") != provider.issuer:
        raise SignInRefused("the id_token was issued by another provider")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if provider.client_id not in audiences:
        raise SignInRefused("the id_token is not meant for Belong (aud)")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
        raise SignInRefused("the id_token was obtained by another client (azp)")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (exp, iat)):
        raise SignInRefused("the id_token lacks exp or iat")
    if exp + LEEWAY_SECONDS <= now:
        raise SignInRefused("the id_token has expired")
    if iat > now + LEEWAY_SECONDS:
        raise SignInRefused("the id_token was issued in the future (iat)")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(
        token_nonce.encode(), nonce.encode()
    ):
        raise SignInRefused("the id_token's nonce is not this sign-in's")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 1 <= len(subject) <= 255:
        raise SignInRefused("the id_token has no subject")
    return VerifiedIdentity(issuer=provider.issuer, subject=subject, claims=claims)


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    if name in claims or "." not in name:
        return claims.get(name)
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def role_of(identity: VerifiedIdentity, provider: IdentityProvider) -> str:
    """Belong's role for the identity: its role claim's value (or values) through the
    provider's role map; :class:`SignInRefused` when none maps."""
    value = _claim(identity.claims, provider.role_claim)
    values = value if isinstance(value, list) else [value]
    mapped = {provider.role_map.get(v) for v in values if isinstance(v, str)}
    for role in ROLE_PRECEDENCE:
        if role in mapped:
            return role
    raise SignInRefused(f"the provider gave no Belong role in the {provider.role_claim} claim")


def display_name(identity: VerifiedIdentity) -> str | None:
    """What the provider calls the user (name, else username, else e-mail), if anything."""
    for claim in ("name", "preferred_username", "email"):
        value = identity.claims.get(claim)
        if isinstance(value, str) and value.strip() and value.isprintable():
            return value.strip()[:200]
    return None


def id_token_of(token_response: Mapping[str, Any]) -> str:
    id_token = token_response.get("id_token")
    if not isinstance(id_token, str):
        raise SignInRefused("the provider's token response has no id_token")
    return id_token


def with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _auth_method(provider: IdentityProvider, metadata: ProviderMetadata) -> str:
    if provider.secret_ref is None:
        if "none" not in metadata.token_endpoint_auth_methods:
            raise SignInRefused("the provider does not accept a client without a secret")
        return "none"
    for method in AUTH_METHODS:
        if method in metadata.token_endpoint_auth_methods:
            return method
    raise SignInRefused("the provider accepts neither client_secret_basic nor client_secret_post")


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-encoded, then base64."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class RelyingParty:
    """Belong as an OpenID Connect client, with the providers' documents and keys it holds
    (``monotonic`` drives their expiry)."""

    def __init__(
        self,
        *,
        cache_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._metadata: dict[str, tuple[ProviderMetadata, float]] = {}
        self._jwks: dict[str, tuple[KeySet, float]] = {}

    def http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=HTTP_TIMEOUT_SECONDS,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )

    @staticmethod
    async def read_json(
        client: httpx.AsyncClient, what: str, method: str, url: str, **kwargs: Any
    ) -> tuple[int, Any]:
        try:
            async with client.stream(method, url, **kwargs) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise SignInRefused(f"the provider's {what} is too large")
                status = response.status_code
        except httpx.HTTPError:
            raise SignInRefused(f"the provider's {what} could not be reached") from None
        try:
            return status, json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise SignInRefused(f"the provider's {what} is not JSON") from None

    async def metadata(self, issuer: str) -> ProviderMetadata:
        """The provider's discovery document, as held or read anew."""
        held = self._metadata.get(issuer)
        if held is not None and held[1] > self._monotonic():
            return held[0]
        try:
            checked_issuer(issuer)
        except ValueError as exc:
            raise SignInRefused(str(exc)) from None
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        async with self.http_client() as client:
            status, document = await self.read_json(client, "discovery document", "GET", url)
        if status != 200:
            raise SignInRefused(f"the provider's discovery document answered {status}")
        metadata = parse_metadata(document, issuer)
        self._metadata[issuer] = (metadata, self._monotonic() + self.cache_seconds)
        return metadata

    async def _keys(self, metadata: ProviderMetadata, *, fresh: bool) -> KeySet:
        held = self._jwks.get(metadata.issuer)
        if not fresh and held is not None and held[1] > self._monotonic():
            return held[0]
        async with self.http_client() as client:
            status, jwks = await self.read_json(client, "JWKS", "GET", metadata.jwks_uri)
        if status != 200:
            raise SignInRefused(f"the provider's JWKS answered {status}")
        keys = signing_keys(jwks)
        self._jwks[metadata.issuer] = (keys, self._monotonic() + self.cache_seconds)
        return keys

    async def authorization_request(
        self, provider: IdentityProvider, redirect_uri: str
    ) -> AuthorizationRequest:
        """A new authorization request: the URL to redirect the browser to, with the state,
        nonce and code verifier to keep until the callback."""
        metadata = await self.metadata(provider.issuer)
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        code_verifier = secrets.token_urlsafe(48)
        scopes = ["openid", *(s for s in provider.scopes if s != "openid")]
        url = with_query(
            metadata.authorization_endpoint,
            {
                "response_type": "code",
                "client_id": provider.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge(code_verifier),
                "code_challenge_method": "S256",
            },
        )
        return AuthorizationRequest(url, state, nonce, code_verifier)

    async def check_callback_issuer(self, provider: IdentityProvider, iss: str | None) -> None:
        """RFC 9207: the redirect names the provider it came from, when that provider says
        it does; another name is a mix-up (the code is not sent anywhere)."""
        metadata = await self.metadata(provider.issuer)
        if (iss is not None or metadata.authorization_response_iss) and iss != provider.issuer:
            raise SignInRefused("the sign-in came back from another provider (iss)")

    async def exchange(
        self,
        provider: IdentityProvider,
        *,
        code: str,
        code_verifier: str,
        redirect_uri: str,
    ) -> str:
        """The id_token the token endpoint gives for the code (not yet verified)."""
        metadata = await self.metadata(provider.issuer)
        body = await self.token_response(
            provider, metadata, code=code, code_verifier=code_verifier, redirect_uri=redirect_uri
        )
        return id_token_of(body)

    async def token_response(
        self,
        provider: IdentityProvider,
        metadata: ProviderMetadata,
        *,
        code: str,
        code_verifier: str,
        redirect_uri: str,
    ) -> dict[str, Any]:
        """The token endpoint's answer to the code (a JSON object), the client
        authenticated as the provider accepts."""
        method = _auth_method(provider, metadata)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        secret = None if provider.secret_ref is None else resolve_secret(provider.secret_ref)
        headers = {}
        if method == "client_secret_basic":
            assert secret is not None
            headers["Authorization"] = _basic(provider.client_id, secret)
        else:
            form["client_id"] = provider.client_id
            if method == "client_secret_post":
                assert secret is not None
                form["client_secret"] = secret
        async with self.http_client() as client:
            status, body = await self.read_json(
                client,
                "token endpoint",
                "POST",
                metadata.token_endpoint,
                data=form,
                headers=headers,
            )
        if status != 200:
            error = body.get("error") if isinstance(body, dict) else None
            named = error if isinstance(error, str) and ERROR_CODE.fullmatch(error) else status
            raise SignInRefused(f"the provider refused the code ({named})")
        if not isinstance(body, dict):
            raise SignInRefused("the provider's token response is not a JSON object")
        return body

    async def verify(
        self,
        provider: IdentityProvider,
        id_token: str,
        *,
        nonce: str,
        now: float | None = None,
        metadata: ProviderMetadata | None = None,
    ) -> VerifiedIdentity:
        """:func:`verify_id_token` with the provider's keys (from ``metadata``, else its
        discovery document); read anew once when the id_token names a kid the held ones
        lack (the provider rotated its keys)."""
        if metadata is None:
            metadata = await self.metadata(provider.issuer)
        header = id_token_header(id_token)
        keys = await self._keys(metadata, fresh=False)
        if not _candidates(keys, header):
            keys = await self._keys(metadata, fresh=True)
        return verify_id_token(id_token, keys, provider, nonce=nonce, now=now)

    async def sign_in(
        self,
        provider: IdentityProvider,
        *,
        code: str,
        code_verifier: str,
        nonce: str,
        redirect_uri: str,
        now: float | None = None,
    ) -> VerifiedIdentity:
        """The code exchanged and its id_token verified: who signed in."""
        id_token = await self.exchange(
            provider, code=code, code_verifier=code_verifier, redirect_uri=redirect_uri
        )
        return await self.verify(provider, id_token, nonce=nonce, now=now)
