"""Clinics and their API clients: creation and bearer-token lookup.

Tokens are random and shown once; only their SHA-256 is stored. This is the only
module that reads across clinics, because a token is what names the clinic.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.database import new_id, utcnow
from service.store.tables import api_clients, clinics

TOKEN_PREFIX = "blg_"  # noqa: S105 - a prefix, not a secret

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
    """Who is calling: one API client of one clinic, with its scopes."""

    client_id: uuid.UUID
    clinic_id: uuid.UUID
    scopes: frozenset[str]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def ensure_clinic(conn: AsyncConnection, name: str) -> uuid.UUID:
    existing = await conn.execute(sa.select(clinics.c.id).where(clinics.c.name == name))
    clinic_id = existing.scalar_one_or_none()
    if clinic_id is not None:
        return clinic_id
    clinic_id = new_id()
    await conn.execute(sa.insert(clinics).values(id=clinic_id, name=name, created_at=utcnow()))
    return clinic_id


async def create_client(
    conn: AsyncConnection, clinic_name: str, scopes: list[str], client_name: str = "api"
) -> tuple[Principal, str]:
    """Create the clinic if new and a client of it; returns the principal and its token."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    clinic_id = await ensure_clinic(conn, clinic_name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client_id = new_id()
    await conn.execute(
        sa.insert(api_clients).values(
            id=client_id,
            clinic_id=clinic_id,
            name=client_name,
            token_hash=hash_token(token),
            scopes=sorted(set(scopes)),
            created_at=utcnow(),
        )
    )
    return Principal(client_id, clinic_id, frozenset(scopes)), token


async def principal_for_token(conn: AsyncConnection, token: str) -> Principal | None:
    row = (
        await conn.execute(
            sa.select(api_clients.c.id, api_clients.c.clinic_id, api_clients.c.scopes).where(
                api_clients.c.token_hash == hash_token(token),
                api_clients.c.revoked_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    return Principal(row.id, row.clinic_id, frozenset(row.scopes))
