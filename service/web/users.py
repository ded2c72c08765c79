"""The clinic's users of the app and their single-use sign-in links (`belong users`), and
the sign-in itself: a redeemed link, or a verified identity, becomes a session."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.clinics import clinic_id_named
from service.platform.database import Database, new_id, utcnow
from service.platform.sessions import ROLES, hash_secret, open_session
from service.platform.tables import sign_in_links, users

SIGN_IN_LINK_MINUTES = 10
SIGN_IN_LINK_PATH = "/app/sign-in/link/"


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    clinic_id: uuid.UUID
    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


def checked_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def checked_user_name(name: str) -> str:
    if not name.strip() or len(name) > 200 or not name.isprintable():
        raise ValueError("a user's name is 1 to 200 printable characters")
    return name


async def find_user(conn: AsyncConnection, clinic_id: uuid.UUID, name: str) -> User | None:
    row = (
        await conn.execute(
            sa.select(users).where(users.c.clinic_id == clinic_id, users.c.name == name)
        )
    ).first()
    return _user(row) if row is not None else None


def _user(row: sa.Row[tuple[object, ...]]) -> User:
    m = row._mapping
    return User(m["id"], m["clinic_id"], m["name"], m["role"], m["created_at"], m["disabled_at"])


async def add_user(
    conn: AsyncConnection,
    clinic_id: uuid.UUID,
    name: str,
    role: str,
    issuer: str | None = None,
    subject: str | None = None,
) -> User:
    user = User(new_id(), clinic_id, checked_user_name(name), checked_role(role), utcnow(), None)
    await conn.execute(
        sa.insert(users).values(
            id=user.id,
            clinic_id=clinic_id,
            name=user.name,
            role=user.role,
            issuer=issuer,
            subject=subject,
            created_at=user.created_at,
        )
    )
    return user


class Users:
    """``belong users``: each use case one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, clinic: str, name: str, role: str, if_missing: bool = False) -> User:
        async with self.db.begin() as conn:
            clinic_id = await clinic_id_named(conn, clinic)
            existing = await find_user(conn, clinic_id, name)
            if existing is not None:
                if if_missing:
                    return existing
                raise ValueError(f"clinic {clinic!r} already has a user named {name!r}")
            return await add_user(conn, clinic_id, name, role)

    async def list(self, clinic: str) -> list[User]:
        async with self.db.begin() as conn:
            clinic_id = await clinic_id_named(conn, clinic)
            rows = await conn.execute(
                sa.select(users).where(users.c.clinic_id == clinic_id).order_by(users.c.name)
            )
            return [_user(row) for row in rows]

    async def disable(self, clinic: str, name: str) -> User:
        """The user can no longer sign in; their open sessions end at their next request."""
        async with self.db.begin() as conn:
            clinic_id = await clinic_id_named(conn, clinic)
            user = await self._named(conn, clinic_id, clinic, name)
            await conn.execute(
                sa.update(users)
                .where(users.c.id == user.id, users.c.disabled_at.is_(None))
                .values(disabled_at=utcnow())
            )
            found = await find_user(conn, clinic_id, name)
            assert found is not None
            return found

    async def link(self, clinic: str, name: str, minutes: int = SIGN_IN_LINK_MINUTES) -> str:
        """A new single-use sign-in link's token for the user, valid ``minutes``."""
        async with self.db.begin() as conn:
            clinic_id = await clinic_id_named(conn, clinic)
            user = await self._named(conn, clinic_id, clinic, name)
            if user.disabled_at is not None:
                raise ValueError(f"user {name!r} is disabled")
            token = secrets.token_urlsafe(32)
            now = utcnow()
            await conn.execute(
                sa.insert(sign_in_links).values(
                    token_hash=hash_secret(token),
                    clinic_id=clinic_id,
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + timedelta(minutes=minutes),
                )
            )
            return token

    @staticmethod
    async def _named(conn: AsyncConnection, clinic_id: uuid.UUID, clinic: str, name: str) -> User:
        user = await find_user(conn, clinic_id, name)
        if user is None:
            raise LookupError(
                f"clinic {clinic!r} has no user named {name!r}; add one with "
                "`belong users add --clinic NAME --name NAME --role clinician`"
            )
        return user


async def redeem_sign_in_link(db: Database, token: str, absolute: timedelta) -> str | None:
    """A session for the link's user (the cookie's value), the link spent; None when the
    link is unknown, spent, expired, or its user disabled."""
    now = utcnow()
    async with db.begin() as conn:
        spent = (
            await conn.execute(
                sa.update(sign_in_links)
                .where(
                    sign_in_links.c.token_hash == hash_secret(token),
                    sign_in_links.c.used_at.is_(None),
                    sign_in_links.c.expires_at > now,
                    sign_in_links.c.user_id == users.c.id,
                    users.c.disabled_at.is_(None),
                )
                .values(used_at=now)
                .returning(sign_in_links.c.clinic_id, sign_in_links.c.user_id)
            )
        ).first()
        if spent is None:
            return None
        return await open_session(conn, spent.clinic_id, spent.user_id, absolute, now)
