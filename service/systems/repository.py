"""Registered clients and systems, across clinics: creating, listing, revoking, rotating,
replacing a system's keys, issuing SMART access tokens; and the clinic's CDS Hooks feedback.

A client or system is named by its id (or a system by its issuer), which is what names the
clinic, so these read across clinics; :class:`FeedbackStore` is scoped to the caller's.
What authenticating a request reads is ``service.platform.credentials``'s.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.clinics import clinic_id_named
from service.platform.credentials import (
    ACCESS_TOKEN_PREFIX,
    SCOPES,
    TOKEN_PREFIX,
    Principal,
    SystemClient,
    hash_token,
)
from service.platform.database import new_id, utcnow
from service.platform.tables import (
    access_tokens,
    api_clients,
    cds_feedback,
    client_keys,
    clinics,
)
from service.platform.tenancy import ClinicScoped


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
    JWTs are listed by :func:`list_systems`."""
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


async def create_system_client(
    conn: AsyncConnection,
    clinic_name: str,
    scopes: list[str],
    client_name: str,
    *,
    issuer: str | None,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    expires_at: datetime | None = None,
    create_clinic: bool = False,
) -> SystemClient:
    """A client of the clinic that signs JWTs; its SMART client_id is ``issuer`` (by default
    the client's own id). The opaque token ``create_client`` makes is never shown."""
    _one_key_source(jwks, jwks_url)
    principal, _ = await create_client(
        conn, clinic_name, scopes, client_name, expires_at=expires_at, create_clinic=create_clinic
    )
    issuer = issuer or str(principal.client_id)
    if not 1 <= len(issuer) <= 255:
        raise ValueError("the issuer is 1 to 255 characters")
    taken = await conn.execute(
        sa.select(client_keys.c.client_id).where(client_keys.c.issuer == issuer)
    )
    if taken.first() is not None:
        raise ValueError(f"the issuer {issuer!r} is already registered")
    await conn.execute(
        sa.insert(client_keys).values(
            client_id=principal.client_id,
            issuer=issuer,
            jwks=jwks,
            jwks_url=jwks_url,
            created_at=utcnow(),
        )
    )
    return SystemClient(principal, issuer, jwks, jwks_url)


def _one_key_source(jwks: dict[str, Any] | None, jwks_url: str | None) -> None:
    if (jwks is None) == (jwks_url is None):
        raise ValueError("give the public keys as a JWKS file or as a JWKS URL")


@dataclass(frozen=True, slots=True)
class SystemRecord:
    """What ``belong systems list`` shows of a system."""

    client: ClientRecord
    issuer: str
    jwks: dict[str, Any] | None
    jwks_url: str | None


def _systems_query() -> sa.Select[Any]:
    return (
        client_records_query()
        .add_columns(client_keys.c.issuer, client_keys.c.jwks, client_keys.c.jwks_url)
        .where(client_keys.c.client_id.is_not(None))
    )


def _system_record(row: sa.Row[Any]) -> SystemRecord:
    return SystemRecord(client_record(row), row.issuer, row.jwks, row.jwks_url)


async def list_systems(conn: AsyncConnection, clinic_name: str | None = None) -> list[SystemRecord]:
    """The clinic's registered systems (every clinic's without a name)."""
    query = _systems_query()
    if clinic_name is not None:
        query = query.where(api_clients.c.clinic_id == await clinic_id_named(conn, clinic_name))
    return [_system_record(row) for row in await conn.execute(query)]


async def system_named(conn: AsyncConnection, id_or_issuer: str) -> SystemRecord:
    """The system with this client id or issuer; :class:`LookupError` if there is none."""
    named = client_keys.c.issuer == id_or_issuer
    with contextlib.suppress(ValueError):  # not a UUID: only an issuer
        named = sa.or_(named, api_clients.c.id == uuid.UUID(id_or_issuer))
    row = (await conn.execute(_systems_query().where(named))).first()
    if row is None:
        raise LookupError(f"no system with the id or issuer {id_or_issuer!r}")
    return _system_record(row)


async def replace_keys(
    conn: AsyncConnection,
    system: SystemRecord,
    *,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Register new public keys for the system (and, if given, a new expiry). JWTs signed by
    the old keys are refused from now on, and so are the access tokens issued under them."""
    _one_key_source(jwks, jwks_url)
    expires_at = rotation_expiry(system.client, expires_at)
    client_id = system.client.id
    await conn.execute(
        sa.update(client_keys)
        .where(client_keys.c.client_id == client_id)
        .values(jwks=jwks, jwks_url=jwks_url)
    )
    changes: dict[str, Any] = {"rotated_at": utcnow()}
    if expires_at is not None:
        changes["expires_at"] = expires_at
    await conn.execute(sa.update(api_clients).where(api_clients.c.id == client_id).values(changes))
    await conn.execute(sa.delete(access_tokens).where(access_tokens.c.client_id == client_id))


async def issue_access_token(
    conn: AsyncConnection, client_id: uuid.UUID, scopes: list[str], lifetime: int
) -> tuple[str, datetime]:
    token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + timedelta(seconds=lifetime)
    await conn.execute(
        sa.insert(access_tokens).values(
            token_hash=hash_token(token),
            client_id=client_id,
            scopes=sorted(set(scopes)),
            expires_at=expires_at,
            created_at=now,
        )
    )
    return token, expires_at


class FeedbackStore(ClinicScoped):
    async def record(
        self, client_id: uuid.UUID, service_id: str, entries: list[dict[str, Any]]
    ) -> int:
        """Store a CDS client's feedback entries; how many."""
        now = utcnow()
        rows = [
            self._row(
                id=new_id(),
                client_id=client_id,
                service_id=service_id,
                recorded_at=now,
                **entry,
            )
            for entry in entries
        ]
        if rows:
            await self.conn.execute(sa.insert(cds_feedback), rows)
        return len(rows)
