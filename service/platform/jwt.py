"""Verifying JWTs that systems sign with their own private keys.

Two callers use this: the SMART Backend Services token endpoint (the client assertion of
``private_key_jwt``) and CDS Hooks service calls (the CDS client's bearer JWT). Both rules
are the same: an asymmetric signature (RS384 or ES384 only: never ``none`` or HMAC) by a
key in the JWKS the clinic registered for the ``iss``, ``aud`` exactly the URL called,
``exp`` in the future and not too far off, and a ``jti`` never seen before (the replay
check is done by the caller, in the database).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

ALGORITHMS = ("RS384", "ES384")
CLOCK_SKEW_SECONDS = 60
"""Tolerance for an ``iat``/``nbf`` a little in the future (unsynchronised clocks)."""
MAX_JWT_CHARS = 8192


class JwtRefused(Exception):
    """The JWT is not acceptable; the message says why (safe to return to the caller)."""


@dataclass(frozen=True, slots=True)
class VerifiedJwt:
    issuer: str
    jti: str
    expires_at: int
    claims: dict[str, Any]


def _segment(part: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise JwtRefused("the JWT is malformed") from None
    if not isinstance(value, dict):
        raise JwtRefused("the JWT is malformed")
    return value


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and len(token) <= MAX_JWT_CHARS


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims, before any check: only to find the issuer's keys."""
    if not looks_like_jwt(token) or not token.isascii():
        raise JwtRefused("the JWT is malformed")
    header_part, claims_part, _ = token.split(".")
    return _segment(header_part), _segment(claims_part)


def public_key_set(jwks: Any) -> KeySet:
    """A JWKS of public RSA or EC keys; private keys and symmetric keys are refused."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError('a JWKS is a JSON object with a non-empty "keys" list')
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC"):
            raise ValueError("only RSA and EC public keys are accepted")
        if "d" in key:
            raise ValueError("the JWKS holds a private key: register the public keys only")
    try:
        return KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"the JWKS cannot be read: {exc}") from None


def _choose_key(keys: KeySet, header: dict[str, Any]) -> RSAKey | ECKey:
    alg = header.get("alg")
    wanted = "RSA" if alg == "RS384" else "EC"
    candidates = [k for k in keys.keys if k.key_type == wanted]
    kid = header.get("kid")
    if kid is not None:
        candidates = [k for k in candidates if k.kid == kid]
    if alg == "ES384":
        candidates = [k for k in candidates if k.get("crv") == "P-384"]
    if len(candidates) != 1:
        raise JwtRefused("no registered key matches the JWT's kid and alg")
    key = candidates[0]
    assert isinstance(key, RSAKey | ECKey)
    return key


def verify(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    audiences: set[str],
    max_lifetime: int,
    subject_is_issuer: bool = False,
    require_iat: bool = False,
    jku: str | None = None,
    now: float | None = None,
) -> VerifiedJwt:
    """Check signature and claims; raises :class:`JwtRefused` with the reason."""
    header, _ = unverified(token)
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise JwtRefused(f"alg {alg!r} is not accepted (use RS384 or ES384)")
    if "jku" in header and header["jku"] != jku:
        raise JwtRefused("the jku header is not the JWKS URL registered for this issuer")
    key = _choose_key(keys, header)
    try:
        claims = dict(jwt.decode(token, key, algorithms=list(ALGORITHMS)).claims)
    except (JoseError, ValueError, TypeError):
        raise JwtRefused("the JWT signature does not verify") from None
    now = time.time() if now is None else now
    if claims.get("iss") != issuer:
        raise JwtRefused("iss is not the registered issuer")
    if subject_is_issuer and claims.get("sub") != issuer:
        raise JwtRefused("sub must equal iss (the client_id)")
    aud = claims.get("aud")
    named = set(aud) if isinstance(aud, list) else {aud}
    if not named & audiences or not all(isinstance(a, str) for a in named):
        raise JwtRefused(f"aud must be {sorted(audiences)[0]}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise JwtRefused("exp is required (seconds since the epoch)")
    if exp <= now:
        raise JwtRefused("the JWT has expired")
    if exp > now + max_lifetime + CLOCK_SKEW_SECONDS:
        raise JwtRefused(f"the JWT lives too long (at most {max_lifetime} seconds)")
    iat = claims.get("iat")
    if iat is None and require_iat:
        raise JwtRefused("iat is required")
    if iat is not None:
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise JwtRefused("iat must be a number")
        if iat > now + CLOCK_SKEW_SECONDS:
            raise JwtRefused("iat is in the future")
        if exp - iat > max_lifetime:
            raise JwtRefused(f"the JWT lives too long (at most {max_lifetime} seconds)")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW_SECONDS:
        raise JwtRefused("the JWT is not valid yet")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 255:
        raise JwtRefused("jti is required (a unique string of at most 255 characters)")
    return VerifiedJwt(issuer=issuer, jti=jti, expires_at=exp, claims=claims)
