"""Systems that authenticate with signed JWTs: their keys, used JWT ids, access tokens.

Like ``clients.py`` this reads across clinics: an issuer or a token is what names the
clinic. A replayed ``jti`` is caught by the primary key of ``used_jtis`` (insert, and a
unique violation means replay), never by a search before the insert.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.credentials import (
    ClientRecord,
    Principal,
    client_is_live,
    client_record,
    client_records_query,
    clinic_id_named,
    create_client,
    rotation_expiry,
)
from service.platform.database import Database, new_id, utcnow
from service.platform.tables import access_tokens, api_clients, cds_feedback, client_keys, used_jtis

ACCESS_TOKEN_PREFIX = "bat_"  # noqa: S105 - a prefix, not a secret
ACCESS_TOKEN_SECONDS = 300


@dataclass(frozen=True, slots=True)
class SystemClient:
    """A registered JWT-signing client: who it is and where its public keys are."""

    principal: Principal
    issuer: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    keys_rotated_at: datetime | None = None
    """When the keys were last replaced: a JWKS URL's cached keys from before are stale."""


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


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_access_token(
    conn: AsyncConnection, client_id: uuid.UUID, scopes: list[str], lifetime: int
) -> tuple[str, datetime]:
    token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + timedelta(seconds=lifetime)
    await conn.execute(
        sa.insert(access_tokens).values(
            token_hash=_hash(token),
            client_id=client_id,
            scopes=sorted(set(scopes)),
            expires_at=expires_at,
            created_at=now,
        )
    )
    return token, expires_at


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
                access_tokens.c.token_hash == _hash(token),
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


async def record_feedback(
    conn: AsyncConnection,
    principal: Principal,
    service_id: str,
    entries: list[dict[str, Any]],
) -> int:
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "clinic_id": principal.clinic_id,
            "client_id": principal.client_id,
            "service_id": service_id,
            "recorded_at": now,
            **entry,
        }
        for entry in entries
    ]
    if rows:
        await conn.execute(sa.insert(cds_feedback), rows)
    return len(rows)
