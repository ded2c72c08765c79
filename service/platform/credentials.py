"""What authenticating a request reads: a clinic token, a SMART access token, a system's
keys and the JWT ids it has used.

Tokens are random and shown once; only their SHA-256 is stored. This module reads across
clinics, because a token (or a JWT's issuer) is what names the clinic. A client is refused
from its ``expires_at`` or ``revoked_at`` on. Creating, listing, revoking and rotating
clients and systems is ``service.systems``'s. A replayed ``jti`` is caught by the primary
key of ``used_jtis`` (insert, and a unique violation means replay), never by a search
before the insert.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.database import Database, utcnow
from service.platform.tables import access_tokens, api_clients, client_keys, used_jtis

TOKEN_PREFIX = "blg_"  # noqa: S105 - a prefix, not a secret
ACCESS_TOKEN_PREFIX = "bat_"  # noqa: S105 - a prefix, not a secret

SCOPES = (
    "screenings:write",
    "screenings:read",
    "referrals:read",
    "referrals:write",
    "directory:write",
    "audit:read",
    "metrics:read",
)
"""``metrics:read`` reads ``GET /metrics`` and nothing else: a scraper's token."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one API client of one clinic, or a user of the clinician app signed in
    to it (``client_id`` None), with the scopes of the client or of the user's role; or,
    with neither, whoever holds a secret link of the clinic (``link_hash``, the hash of its
    token: a service by its inbox link, a patient by their own link)."""

    client_id: uuid.UUID | None
    clinic_id: uuid.UUID
    scopes: frozenset[str]
    user_id: uuid.UUID | None = None
    link_hash: str | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def client_is_live(now: datetime) -> sa.ColumnElement[bool]:
    """The condition on ``api_clients`` that its credentials are accepted at ``now``."""
    return sa.and_(
        api_clients.c.revoked_at.is_(None),
        sa.or_(api_clients.c.expires_at.is_(None), api_clients.c.expires_at > now),
    )


async def principal_for_token(
    conn: AsyncConnection, token: str
) -> tuple[Principal, datetime | None] | None:
    """The principal of a live clinic token, and when its client expires (None: never)."""
    row = (
        await conn.execute(
            sa.select(
                api_clients.c.id,
                api_clients.c.clinic_id,
                api_clients.c.scopes,
                api_clients.c.expires_at,
            ).where(api_clients.c.token_hash == hash_token(token), client_is_live(utcnow()))
        )
    ).first()
    if row is None:
        return None
    expires_at = row.expires_at if row.expires_at is not None else None
    return Principal(row.id, row.clinic_id, frozenset(row.scopes)), expires_at


async def principal_for_access_token(
    conn: AsyncConnection, token: str
) -> tuple[Principal, datetime] | None:
    """The principal of a live SMART access token, and when the token (or, sooner, its
    client) expires."""
    now = utcnow()
    row = (
        await conn.execute(
            sa.select(
                api_clients.c.id,
                api_clients.c.clinic_id,
                access_tokens.c.scopes,
                access_tokens.c.expires_at,
                api_clients.c.expires_at.label("client_expires_at"),
            )
            .join(api_clients, api_clients.c.id == access_tokens.c.client_id)
            .where(
                access_tokens.c.token_hash == hash_token(token),
                access_tokens.c.expires_at > now,
                client_is_live(now),
            )
        )
    ).first()
    if row is None:
        return None
    expires_at = row.expires_at
    if row.client_expires_at is not None:
        expires_at = min(expires_at, row.client_expires_at)
    return Principal(row.id, row.clinic_id, frozenset(row.scopes)), expires_at


@dataclass(frozen=True, slots=True)
class SystemClient:
    """A registered JWT-signing client: who it is and where its public keys are."""

    principal: Principal
    issuer: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    keys_rotated_at: datetime | None = None
    """When the keys were last replaced: a JWKS URL's cached keys from before are stale."""


async def system_client(conn: AsyncConnection, issuer: str) -> SystemClient | None:
    """The live (unrevoked, unexpired) system with this issuer."""
    row = (
        await conn.execute(
            sa.select(
                api_clients.c.id,
                api_clients.c.clinic_id,
                api_clients.c.scopes,
                api_clients.c.rotated_at,
                client_keys.c.jwks,
                client_keys.c.jwks_url,
            )
            .join(client_keys, client_keys.c.client_id == api_clients.c.id)
            .where(client_keys.c.issuer == issuer, client_is_live(utcnow()))
        )
    ).first()
    if row is None:
        return None
    principal = Principal(row.id, row.clinic_id, frozenset(row.scopes))
    return SystemClient(principal, issuer, row.jwks, row.jwks_url, row.rotated_at)


async def consume_jti(db: Database, issuer: str, jti: str, expires_at: int) -> bool:
    """Record a JWT id; False when the issuer has presented it before (a replay).

    Committed on its own, so that the id stays used whatever happens to the request."""
    expiry = datetime.fromtimestamp(expires_at, UTC)
    try:
        async with db.begin() as conn:
            await conn.execute(
                sa.insert(used_jtis).values(issuer=issuer, jti=jti, expires_at=expiry)
            )
    except sa.exc.IntegrityError:
        return False
    if secrets.randbelow(50) == 0:  # now and then, forget ids whose JWTs can no longer be used
        async with db.begin() as conn:
            cutoff = utcnow() - timedelta(hours=1)
            await conn.execute(sa.delete(used_jtis).where(used_jtis.c.expires_at < cutoff))
            await conn.execute(sa.delete(access_tokens).where(access_tokens.c.expires_at < cutoff))
    return True
