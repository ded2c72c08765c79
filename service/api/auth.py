"""Bearer-token authentication and per-route scopes.

Every route needs a token unless it is marked ``exclude_from_auth`` (health, the OpenAPI
document, FHIR metadata and the instrument catalog). A route's required scope is its
``opt["scope"]``; the guard answers 403 without it. Token lookups are cached briefly so
that a busy client costs one hash and one dictionary read per request.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from service.store.clients import Principal, hash_token, principal_for_token
from service.store.database import Database

PUBLIC = {"exclude_from_auth": True}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="belong"'}
TOKEN_CACHE_SECONDS = 30.0


class TokenCache:
    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[Principal, float]] = {}

    async def principal(self, db: Database, token: str) -> Principal | None:
        key = hash_token(token)
        cached = self._entries.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        async with db.engine.connect() as conn:
            principal = await principal_for_token(conn, token)
        if principal is not None:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (principal, now + self.ttl)
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
        if len(token) > 256 or not token.isascii() or not token.isprintable():
            raise NotAuthorizedException("The bearer token is not valid", headers=CHALLENGE)
        state = connection.app.state
        principal = await state.token_cache.principal(state.db, token)
        if principal is None:
            raise NotAuthorizedException("The bearer token is not valid", headers=CHALLENGE)
        state.rate_limiter.check(principal.client_id)
        return AuthenticationResult(user=principal, auth=token)


def require_scope(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    scope = handler.opt.get("scope")
    if scope is None:
        return
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal) or scope not in principal.scopes:
        raise PermissionDeniedException(f"This call needs the {scope!r} scope")


def scoped(scope: str, **extra: Any) -> dict[str, Any]:
    """Route options for a call that needs ``scope``."""
    return {"scope": scope, **extra}
