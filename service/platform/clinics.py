"""Clinics, the tenants: made on purpose by name, each with the languages its patients speak.

Like ``credentials.py`` this reads across clinics: a clinic is found by its name, which is
unique. A name that is not there is refused (:class:`UnknownClinic`, with the near misses)
unless the caller asks for the clinic to be created, so a typo cannot make a second clinic.
:class:`Clinics` holds the use cases of ``belong clinics``.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.database import Database, new_id, utcnow
from service.platform.languages import LanguageTag
from service.platform.tables import clinics

DEFAULT_LANGUAGES = ("en",)
"""A new clinic's languages unless it is given others."""
MAX_LANGUAGES = 10


@dataclass(frozen=True, slots=True)
class Clinic:
    id: uuid.UUID
    name: str
    languages: tuple[str, ...]
    """BCP 47 tags: matching's languages for a patient whose profile records none."""
    created_at: datetime


class UnknownClinic(LookupError, ValueError):
    """No clinic of that name (a ValueError too, as every refused argument here is)."""

    def __init__(self, name: str, near: Sequence[str]) -> None:
        self.name = name
        self.near = list(near)
        hint = f" (did you mean {' or '.join(repr(n) for n in self.near)}?)" if near else ""
        super().__init__(f"no clinic named {name!r}{hint}")


class ClinicExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a clinic named {name!r} already exists")


def checked_languages(languages: Sequence[str]) -> tuple[str, ...]:
    """BCP 47 tags, each once, in the order given; ValueError naming a malformed one."""
    for tag in languages:
        try:
            msgspec.convert(tag, LanguageTag)
        except msgspec.ValidationError:
            raise ValueError(f"{tag!r} is not a BCP 47 language tag (like en or es-MX)") from None
    unique = tuple(dict.fromkeys(languages))
    if not 1 <= len(unique) <= MAX_LANGUAGES:
        raise ValueError(f"a clinic has 1 to {MAX_LANGUAGES} languages")
    return unique


def _checked_name(name: str) -> str:
    if not name.strip() or len(name) > 200 or not name.isprintable():
        raise ValueError("a clinic's name is 1 to 200 printable characters")
    return name


def _clinic(row: Any) -> Clinic:
    return Clinic(row.id, row.name, tuple(row.languages), row.created_at)


async def find_clinic(conn: AsyncConnection, name: str) -> Clinic | None:
    row = (await conn.execute(sa.select(clinics).where(clinics.c.name == name))).first()
    return _clinic(row) if row is not None else None


async def list_clinics(conn: AsyncConnection) -> list[Clinic]:
    rows = await conn.execute(sa.select(clinics).order_by(clinics.c.name))
    return [_clinic(row) for row in rows]


async def unknown_clinic(conn: AsyncConnection, name: str) -> UnknownClinic:
    names = (await conn.execute(sa.select(clinics.c.name))).scalars().all()
    return UnknownClinic(name, difflib.get_close_matches(name, names, n=3, cutoff=0.75))


async def create_clinic(
    conn: AsyncConnection, name: str, languages: Sequence[str] = DEFAULT_LANGUAGES
) -> Clinic:
    """A new clinic; ClinicExists when the name is taken."""
    name = _checked_name(name)
    tags = checked_languages(languages)
    if await find_clinic(conn, name) is not None:
        raise ClinicExists(name)
    clinic = Clinic(new_id(), name, tags, utcnow())
    await conn.execute(
        sa.insert(clinics).values(
            id=clinic.id, name=name, languages=list(tags), created_at=clinic.created_at
        )
    )
    return clinic


async def update_clinic(conn: AsyncConnection, name: str, languages: Sequence[str]) -> Clinic:
    tags = checked_languages(languages)
    result = await conn.execute(
        sa.update(clinics).where(clinics.c.name == name).values(languages=list(tags))
    )
    if not result.rowcount:
        raise await unknown_clinic(conn, name)
    found = await find_clinic(conn, name)
    assert found is not None
    return found


async def clinic_id_named(conn: AsyncConnection, name: str, *, create: bool = False) -> uuid.UUID:
    """The clinic's id; with ``create``, a new clinic (default languages) if there is none
    of that name, else UnknownClinic."""
    found = await find_clinic(conn, name)
    if found is not None:
        return found.id
    if not create:
        raise await unknown_clinic(conn, name)
    return (await create_clinic(conn, name)).id


async def clinic_languages(conn: AsyncConnection, clinic_id: uuid.UUID) -> tuple[str, ...]:
    query = sa.select(clinics.c.languages).where(clinics.c.id == clinic_id)
    return tuple((await conn.execute(query)).scalar_one_or_none() or ())


class Clinics:
    """The clinics (``belong clinics``): each use case one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, name: str, languages: Sequence[str], *, if_missing: bool = False
    ) -> tuple[Clinic, bool]:
        """The clinic and whether it is new; with ``if_missing`` an existing clinic of that
        name is answered unchanged, else ClinicExists."""
        async with self.db.begin() as conn:
            if if_missing:
                found = await find_clinic(conn, name)
                if found is not None:
                    return found, False
            return await create_clinic(conn, name, languages), True

    async def list(self) -> list[Clinic]:
        async with self.db.begin() as conn:
            return await list_clinics(conn)

    async def update(self, name: str, languages: Sequence[str]) -> Clinic:
        """Set the clinic's languages; UnknownClinic when there is none of that name."""
        async with self.db.begin() as conn:
            return await update_clinic(conn, name, languages)
