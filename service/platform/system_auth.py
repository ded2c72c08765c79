"""Authenticating a system by a JWT it signed: find its keys, verify, refuse replays.

Used by the SMART token endpoint (client assertions) and by CDS Hooks calls (the CDS
client's bearer JWT). A JWKS registered by URL is fetched when needed and kept for
five minutes, or until ``belong systems rotate`` replaces the system's keys.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joserfc.jwk import KeySet

from service.platform.credentials import Principal, SystemClient, consume_jti, system_client
from service.platform.database import Database
from service.platform.jwt import JwtRefused, VerifiedJwt, public_key_set, unverified, verify

JWKS_URL_CACHE_SECONDS = 300.0
JWKS_FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class JwtCaller:
    """``auth`` of a request authenticated by the caller's own signed JWT (CDS Hooks)."""

    issuer: str
    jti: str


def _fetch(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=JWKS_FETCH_TIMEOUT) as response:  # noqa: S310
        return json.loads(response.read(MAX_JWKS_BYTES))


class JwksUrlCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[KeySet, float, datetime | None]] = {}

    async def get(self, url: str, keys_rotated_at: datetime | None) -> KeySet:
        """The keys at ``url``; fetched again when the system's keys were rotated since."""
        held = self._entries.get(url)
        now = time.monotonic()
        if held is not None and held[1] > now and held[2] == keys_rotated_at:
            return held[0]
        try:
            keys = public_key_set(await asyncio.to_thread(fetch_jwks, url))
        except Exception:
            raise JwtRefused("the client's JWKS URL could not be read") from None
        self._entries[url] = (keys, now + JWKS_URL_CACHE_SECONDS, keys_rotated_at)
        return keys


fetch_jwks = _fetch
"""How a JWKS URL is read (replaced in tests)."""
JWKS_URLS = JwksUrlCache()


async def keys_of(client: SystemClient) -> KeySet:
    if client.jwks is not None:
        try:
            return public_key_set(client.jwks)
        except ValueError:
            raise JwtRefused("the client's registered JWKS cannot be read") from None
    assert client.jwks_url is not None
    return await JWKS_URLS.get(client.jwks_url, client.keys_rotated_at)


async def verify_system_jwt(
    db: Database,
    token: str,
    *,
    audiences: set[str],
    max_lifetime: int,
    subject_is_issuer: bool = False,
    require_iat: bool = False,
) -> tuple[Principal, VerifiedJwt]:
    """The registered client that signed ``token``; :class:`JwtRefused` says why not."""
    _, claims = unverified(token)
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not 1 <= len(issuer) <= 255:
        raise JwtRefused("iss is required")
    async with db.begin() as conn:
        client = await system_client(conn, issuer)
    if client is None:
        raise JwtRefused("the issuer is not registered")
    verified = verify(
        token,
        await keys_of(client),
        issuer=issuer,
        audiences=audiences,
        max_lifetime=max_lifetime,
        subject_is_issuer=subject_is_issuer,
        require_iat=require_iat,
        jku=client.jwks_url,
    )
    if not await consume_jti(db, issuer, verified.jti, verified.expires_at):
        raise JwtRefused("the jti has been used before (a replayed JWT)")
    return client.principal, verified
