"""API clients of clinics: creation and bearer-token lookup.

Tokens are random and shown once; only their SHA-256 is stored. This module (with
``clinics.py``) reads across clinics, because a token is what names the clinic.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.clinics import clinic_id_named
from service.store.database import new_id, utcnow
from service.store.tables import api_clients

TOKEN_PREFIX = "blg_"  # noqa: S105 - a prefix, not a secret

SCOPES = (
    "screenings:write",
    "screenings:read",
    "referrals:read",
    "referrals:write",
    "directory:write",
    "audit:read",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one API client of one clinic, with its scopes."""

    client_id: uuid.UUID
    clinic_id: uuid.UUID
    scopes: frozenset[str]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_client(
    conn: AsyncConnection,
    clinic_name: str,
    scopes: list[str],
    client_name: str = "api",
    *,
    create_clinic: bool = False,
) -> tuple[Principal, str]:
    """A client of the named clinic; returns the principal and its token. An unknown clinic
    is refused (UnknownClinic) unless ``create_clinic``, which creates it."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    clinic_id = await clinic_id_named(conn, clinic_name, create=create_clinic)
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
