"""API clients of clinics: creation, listing, revocation, rotation, token lookup.

Tokens are random and shown once; only their SHA-256 is stored. This module (with
``clinics.py``) reads across clinics, because a token is what names the clinic. A client is
refused from its ``expires_at`` or ``revoked_at`` on; rotating replaces its token's hash.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.clinics import clinic_id_named
from service.platform.database import new_id, utcnow
from service.platform.tables import api_clients, client_keys, clinics

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


async def create_client(
    conn: AsyncConnection,
    clinic_name: str,
    scopes: list[str],
    client_name: str = "api",
    *,
    expires_at: datetime | None = None,
    create_clinic: bool = False,
) -> tuple[Principal, str]:
    """A client of the named clinic; returns the principal and its token. An unknown clinic
    is refused (UnknownClinic) unless ``create_clinic``, which creates it."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    expires_at = valid_expiry(expires_at)
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
            expires_at=expires_at,
        )
    )
    return Principal(client_id, clinic_id, frozenset(scopes)), token


def valid_expiry(expires_at: datetime | None) -> datetime | None:
    """The expiry; :class:`ValueError` if it has passed."""
    if expires_at is None:
        return None
    if expires_at <= utcnow():
        raise ValueError(f"the expiry {expires_at.isoformat()} is in the past")
    return expires_at


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


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What ``belong clients list`` shows of a client: never its token or the token's hash."""

    id: uuid.UUID
    clinic: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    rotated_at: datetime | None
    revoked_at: datetime | None
    is_system: bool


CLIENT_RECORD_COLUMNS = (
    api_clients.c.id,
    clinics.c.name.label("clinic"),
    api_clients.c.name,
    api_clients.c.scopes,
    api_clients.c.created_at,
    api_clients.c.expires_at,
    api_clients.c.rotated_at,
    api_clients.c.revoked_at,
    client_keys.c.client_id.is_not(None).label("is_system"),
)
"""``ClientRecord``'s columns, from api_clients joined to clinics and outer-joined to
client_keys."""


def client_record(row: sa.Row[Any]) -> ClientRecord:
    return ClientRecord(
        id=row.id,
        clinic=row.clinic,
        name=row.name,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        rotated_at=row.rotated_at,
        revoked_at=row.revoked_at,
        is_system=bool(row.is_system),
    )


def client_records_query() -> sa.Select[Any]:
    return (
        sa.select(*CLIENT_RECORD_COLUMNS)
        .join(clinics, clinics.c.id == api_clients.c.clinic_id)
        .outerjoin(client_keys, client_keys.c.client_id == api_clients.c.id)
        .order_by(clinics.c.name, api_clients.c.created_at, api_clients.c.id)
    )


async def list_clients(conn: AsyncConnection, clinic_name: str | None = None) -> list[ClientRecord]:
    """The clinic's bearer-token clients (every clinic's without a name); systems that sign
    JWTs are listed by ``systems.list_systems``."""
    query = client_records_query().where(client_keys.c.client_id.is_(None))
    if clinic_name is not None:
        query = query.where(api_clients.c.clinic_id == await clinic_id_named(conn, clinic_name))
    return [client_record(row) for row in await conn.execute(query)]


async def client_by_id(conn: AsyncConnection, client_id: str) -> ClientRecord:
    """The client with this id; :class:`LookupError` names what is wrong."""
    try:
        wanted = uuid.UUID(client_id)
    except ValueError:
        raise LookupError(f"{client_id!r} is not a client id (a UUID)") from None
    row = (await conn.execute(client_records_query().where(api_clients.c.id == wanted))).first()
    if row is None:
        raise LookupError(f"no client {client_id}")
    return client_record(row)


async def revoke_client(conn: AsyncConnection, client_id: uuid.UUID) -> None:
    """Revoke the client (a token client or a system), keeping the first revocation's time.
    Workers notice within their token cache's lifetime."""
    await conn.execute(
        sa.update(api_clients)
        .where(api_clients.c.id == client_id, api_clients.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def rotation_expiry(client: ClientRecord, new_expiry: datetime | None) -> datetime | None:
    """The new expiry (in UTC) for a rotation, which does not bring back a revoked client nor
    an expired one (unless given a new expiry)."""
    if client.revoked_at is not None:
        raise ValueError(
            f"client {client.id} was revoked at {client.revoked_at.isoformat()}; "
            "create a new client instead"
        )
    if new_expiry is None and client.expires_at is not None and client.expires_at <= utcnow():
        raise ValueError(
            f"client {client.id} expired at {client.expires_at.isoformat()}; give it a new expiry"
        )
    return valid_expiry(new_expiry)


async def rotate_token(
    conn: AsyncConnection, client: ClientRecord, expires_at: datetime | None = None
) -> str:
    """A new token for the client, replacing the old one's hash (and, if given, its expiry);
    returns the token, to be shown once."""
    expires_at = rotation_expiry(client, expires_at)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    changes: dict[str, Any] = {"token_hash": hash_token(token), "rotated_at": utcnow()}
    if expires_at is not None:
        changes["expires_at"] = expires_at
    await conn.execute(sa.update(api_clients).where(api_clients.c.id == client.id).values(changes))
    return token
