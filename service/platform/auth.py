"""Bearer-token authentication and per-route scopes.

Three kinds of bearer token: a clinic client's opaque ``blg_`` token, a SMART Backend
Services access token (``bat_``, from the token endpoint, at most 300 seconds), and, on
CDS Hooks routes only (``opt["cds"]``), the CDS client's own signed JWT.

Every route needs a token unless it is marked ``exclude_from_auth`` (health, the OpenAPI
document, FHIR metadata and the instrument catalog). A route's required scope is its
``opt["scope"]``; authentication answers 403 without it. Token lookups are cached for a
second so that a busy client costs one hash and one dictionary read per request.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from service.platform.credentials import (
    ACCESS_TOKEN_PREFIX,
    Principal,
    hash_token,
    principal_for_access_token,
    principal_for_token,
)
from service.platform.database import Database, utcnow
from service.platform.jwt import JwtRefused, looks_like_jwt
from service.platform.origin import public_origin
from service.platform.system_auth import JwtCaller, verify_system_jwt

PUBLIC = {"exclude_from_auth": True}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="belong"'}
TOKEN_CACHE_SECONDS = 1.0
"""How long a worker trusts a token it has looked up, and so the longest a revoked, rotated
or expired token is still served: each worker is its own process, and ``belong clients
revoke`` another. A PostgreSQL LISTEN/NOTIFY invalidation would need a connection held per
worker and still a TTL for when it drops; the price of one second is
one indexed lookup (about a millisecond) per token per second per worker."""
CDS_JWT_MAX_SECONDS = 3600
"""The longest a CDS client's JWT may live (``exp`` - ``iat``)."""


class TokenCache:
    """Principals by token hash for ``ttl`` seconds. Concurrent misses of one token share a
    single look-up, so an entry expiring under load costs one query, not one per request."""

    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}

    async def principal(self, db: Database, token: str) -> Principal | None:
        key = hash_token(token)
        cached = self._entries.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(db, token, key))
            self._lookups[key] = lookup
            lookup.add_done_callback(lambda done: self._finished(key, done))
        # shielded: a caller cut off by its time limit leaves the look-up to the others
        return await asyncio.shield(lookup)

    def _finished(self, key: str, lookup: asyncio.Future[Principal | None]) -> None:
        self._lookups.pop(key, None)
        if not lookup.cancelled():
            lookup.exception()  # retrieved here, so a look-up whose callers all left is quiet

    async def _look_up(self, db: Database, token: str, key: str) -> Principal | None:
        now = time.monotonic()  # before the query: the entry never outlives ttl from it
        found: tuple[Principal, datetime | None] | None
        async with db.begin() as conn:
            if token.startswith(ACCESS_TOKEN_PREFIX):
                found = await principal_for_access_token(conn, token)
            else:
                found = await principal_for_token(conn, token)
        if found is None:
            return None
        principal, expires_at = found
        until = now + self.ttl
        if expires_at is not None:  # never cached beyond the token's (or client's) expiry
            until = min(until, now + (expires_at - utcnow()).total_seconds())
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (principal, until)
        return principal


class BearerAuthentication(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorizedException("A bearer token is required", headers=CHALLENGE)
        handler = connection.scope.get("route_handler")
        if handler is not None and handler.opt.get("cds") and looks_like_jwt(token):
            return await self._cds_caller(connection, token)
        if len(token) > 256 or not token.isascii() or not token.isprintable():
            raise NotAuthorizedException("The bearer token is not valid", headers=CHALLENGE)
        state = connection.app.state
        principal = await state.token_cache.principal(state.db, token)
        if principal is None:
            raise NotAuthorizedException("The bearer token is not valid", headers=CHALLENGE)
        state.rate_limiter.check(principal.client_id)
        _require_scope(handler, principal)
        return AuthenticationResult(user=principal, auth=token)

    async def _cds_caller(
        self, connection: ASGIConnection[Any, Any, Any, Any], token: str
    ) -> AuthenticationResult:
        """A CDS Hooks call: the CDS client's own JWT, ``aud`` the exact URL called."""
        state = connection.app.state
        base = public_origin(connection)
        path = connection.url.path
        audiences = {base + path}
        if path.endswith("/feedback"):  # some clients name the service itself
            audiences.add(base + path.removesuffix("/feedback"))
        try:
            principal, verified = await verify_system_jwt(
                state.db,
                token,
                audiences=audiences,
                max_lifetime=CDS_JWT_MAX_SECONDS,
                require_iat=True,
            )
        except JwtRefused as exc:
            raise NotAuthorizedException(
                f"The CDS client JWT is refused: {exc}", headers=CHALLENGE
            ) from None
        state.rate_limiter.check(principal.client_id)
        _require_scope(connection.scope.get("route_handler"), principal)
        return AuthenticationResult(user=principal, auth=JwtCaller(verified.issuer, verified.jti))


def _require_scope(handler: BaseRouteHandler | None, principal: Principal) -> None:
    """403 unless the caller holds the route's ``opt["scope"]``. Checked here rather than in
    a Litestar guard, which copies the route handler on every request."""
    scope = handler.opt.get("scope") if handler is not None else None
    if scope is not None and scope not in principal.scopes:
        raise PermissionDeniedException(f"This call needs the {scope!r} scope")


async def require_jwt_caller(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """CDS Hooks calls are authenticated by the CDS client's signed JWT, not a Belong token
    (async, like require_scope, so that Litestar runs it without a thread)."""
    if not isinstance(connection.scope.get("auth"), JwtCaller):
        raise NotAuthorizedException(
            "CDS Hooks calls need a JWT signed by the registered CDS client", headers=CHALLENGE
        )


def scoped(scope: str, **extra: Any) -> dict[str, Any]:
    """Route options for a call that needs ``scope``."""
    return {"scope": scope, **extra}
