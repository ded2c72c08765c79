"""Referrals' queries: the referrals of a clinic, their history, and what they point at.

:class:`ReferralStore` runs in a use case's transaction. :func:`patient_referrals` is a hot
read (a patient's referrals, shown with their recommendations): one statement compiled once
from tables.py's columns, on the pooled connection's own asyncpg connection, scoped by
``clinic_id`` as the store's are.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Row

from service.platform.database import Compiled, Database, new_id
from service.platform.tables import (
    api_clients,
    clinics,
    directory_services,
    patients,
    referral_events,
    referrals,
    screenings,
    secret_links,
    users,
)
from service.platform.tenancy import ClinicScoped
from service.referrals.model import Status


@dataclass(frozen=True, slots=True)
class ReferralQuery:
    statuses: Sequence[str] = ()
    """Any of these; empty means any status."""
    patient_id: str | None = None
    service_id: str | None = None
    updated_since: datetime | None = None
    updated_filters: Sequence[tuple[str, datetime]] = ()
    created_filters: Sequence[tuple[str, datetime]] = ()
    any_of: Sequence[tuple[str, Sequence[str]]] = ()
    """(column, values): the referral's ``id``, ``patient_id``, ``service_id`` or
    ``status``, or its service's ``category``, is one of the values (none for no values).
    Each pair must hold: a FHIR search's parameters, each repeat of one too."""
    limit: int = 50
    """Rows to fetch; 0 for the count alone."""
    offset: int = 0
    after: tuple[datetime, str] | None = None
    """The (updated_at, id) of the last row of the previous page: keyset paging, which rows
    changed meanwhile neither repeat nor shift (FHIR searches; /v1 pages by offset)."""


@dataclass(frozen=True, slots=True)
class ReferralRecord:
    """A referral as stored, with its service's directory entry (even a withdrawn one) and
    its status changes, oldest first."""

    referral: dict[str, Any]
    """The referrals row."""
    service: dict[str, Any]
    """The service's ``details``."""
    history: list[dict[str, Any]]
    """referral_events rows: from_status, to_status, reason, outcome, client_id, user_id,
    recorded_at (as stored or as JSON text)."""


@dataclass(frozen=True, slots=True)
class Targets:
    """What a new referral would point at, as found in the clinic."""

    patient_known: bool
    service: dict[str, Any] | None
    """The live service's ``details``; None when there is none (or it was withdrawn)."""
    screening_patient: str | None
    """The patient the screening belongs to; None when there is no such screening."""


_COMPARATORS = {
    "eq": lambda column, value: column == value,
    "ge": lambda column, value: column >= value,
    "gt": lambda column, value: column > value,
    "le": lambda column, value: column <= value,
    "lt": lambda column, value: column < value,
}


class ReferralStore(ClinicScoped):
    async def targets(self, patient_id: str, service_id: str, screening_id: str | None) -> Targets:
        """The patient, service and screening a referral would name, in one round trip."""
        patient = sa.exists().where(self._scoped(patients), patients.c.id == patient_id)
        service = (
            self._select(directory_services, directory_services.c.details)
            .where(
                directory_services.c.id == service_id,
                directory_services.c.deleted_at.is_(None),
            )
            .scalar_subquery()
        )
        screening: Any = sa.null()
        if screening_id is not None:
            screening = (
                self._select(screenings, screenings.c.patient_id)
                .where(screenings.c.id == screening_id)
                .scalar_subquery()
            )
        query = sa.select(patient.label("patient"), service.label("service"), screening)
        known, details, screening_patient = (await self.conn.execute(query)).one()
        return Targets(bool(known), details, screening_patient)

    async def insert_referral(self, **values: Any) -> None:
        await self.conn.execute(sa.insert(referrals).values(self._row(**values)))

    async def insert_referral_event(self, **values: Any) -> None:
        await self.conn.execute(sa.insert(referral_events).values(self._row(id=new_id(), **values)))

    async def get_referral(self, referral_id: str, for_update: bool = False) -> Row[Any] | None:
        """The referral; with ``for_update``, locked until the transaction ends."""
        query = self._select(referrals).where(referrals.c.id == referral_id)
        if for_update:
            query = query.with_for_update()
        return (await self.conn.execute(query)).first()

    async def list_referrals(self, q: ReferralQuery) -> tuple[list[Row[Any]], int]:
        conditions: list[Any] = []
        if q.statuses:
            conditions.append(referrals.c.status.in_(q.statuses))
        if q.patient_id is not None:
            conditions.append(referrals.c.patient_id == q.patient_id)
        if q.service_id is not None:
            conditions.append(referrals.c.service_id == q.service_id)
        if q.updated_since is not None:
            conditions.append(referrals.c.updated_at >= q.updated_since)
        for column, filters in (
            ("updated_at", q.updated_filters),
            ("created_at", q.created_filters),
        ):
            for prefix, instant in filters:
                conditions.append(_COMPARATORS[prefix](referrals.c[column], instant))
        for column, values in q.any_of:
            if column == "category":
                in_category = self._select(directory_services, directory_services.c.id).where(
                    directory_services.c.category.in_(values)
                )
                conditions.append(referrals.c.service_id.in_(in_category))
            else:
                conditions.append(referrals.c[column].in_(values))
        count = self._select(referrals, sa.func.count()).where(*conditions)
        total = (await self.conn.execute(count)).scalar_one()
        if not q.limit:
            return [], total
        if q.after is not None:
            conditions.append(sa.tuple_(referrals.c.updated_at, referrals.c.id) < q.after)
        page = (
            self._select(referrals)
            .where(*conditions)
            .order_by(referrals.c.updated_at.desc(), referrals.c.id.desc())
            .limit(q.limit)
            .offset(q.offset)
        )
        return list((await self.conn.execute(page)).all()), total

    async def worklist(
        self,
        *,
        open_statuses: Sequence[str],
        recent_since: datetime,
        overdue_before: datetime,
        statuses: Sequence[str],
        instrument: str | None,
        overdue_only: bool,
        newest_first: bool,
        limit: int,
        offset: int,
    ) -> list[Row[Any]]:
        """One page of the worklist's referrals: every open one (``open_statuses``) and the
        rest changed since ``recent_since``, with their service's name and whether they are
        overdue (requested before ``overdue_before`` and not yet accepted); oldest or newest
        request first. ``statuses`` (empty for all), ``instrument`` (of the screening the
        referral was made from) and ``overdue_only`` narrow it."""
        r = referrals.c
        overdue = sa.and_(r.status == Status.REQUESTED.value, r.created_at < overdue_before)
        conditions = self._worklist_conditions(open_statuses, recent_since, instrument)
        if statuses:
            conditions.append(r.status.in_(statuses))
        if overdue_only:
            conditions.append(overdue)
        order = (r.created_at.desc(), r.id.desc()) if newest_first else (r.created_at, r.id)
        d = directory_services.c
        query = (
            sa.select(
                r.id,
                r.patient_id,
                r.service_id,
                r.status,
                r.outcome,
                r.created_at,
                r.updated_at,
                d.name.label("service_name"),
                overdue.label("overdue"),
            )
            .select_from(
                referrals.join(
                    directory_services,
                    sa.and_(d.clinic_id == r.clinic_id, d.id == r.service_id),
                )
            )
            .where(*conditions)
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
        return list((await self.conn.execute(query)).all())

    async def worklist_counts(
        self,
        *,
        open_statuses: Sequence[str],
        recent_since: datetime,
        overdue_before: datetime,
        instrument: str | None,
    ) -> dict[str, tuple[int, int]]:
        """The worklist's referrals by status: status -> (how many, how many overdue)."""
        r = referrals.c
        overdue = sa.and_(r.status == Status.REQUESTED.value, r.created_at < overdue_before)
        query = (
            sa.select(r.status, sa.func.count(), sa.func.count().filter(overdue))
            .where(*self._worklist_conditions(open_statuses, recent_since, instrument))
            .group_by(r.status)
        )
        return {row[0]: (row[1], row[2]) for row in (await self.conn.execute(query)).all()}

    def _worklist_conditions(
        self, open_statuses: Sequence[str], recent_since: datetime, instrument: str | None
    ) -> list[Any]:
        r = referrals.c
        conditions: list[Any] = [
            self._scoped(referrals),
            sa.or_(r.status.in_(open_statuses), r.updated_at >= recent_since),
        ]
        if instrument is not None:
            made_from = self._select(screenings, screenings.c.id).where(
                screenings.c.instrument == instrument
            )
            conditions.append(r.screening_id.in_(made_from))
        return conditions

    async def service_details(self, rows: Sequence[Row[Any]]) -> dict[str, dict[str, Any]]:
        """The directory entries (``details``) the referrals point at, withdrawn or not."""
        service_ids = sorted({row.service_id for row in rows})
        query = self._select(
            directory_services, directory_services.c.id, directory_services.c.details
        ).where(directory_services.c.id.in_(service_ids))
        return {row.id: row.details for row in (await self.conn.execute(query)).all()}

    async def with_history(self, rows: Sequence[Row[Any]]) -> list[ReferralRecord]:
        """Referral rows with their services' entries and their history."""
        if not rows:
            return []
        services = await self.service_details(rows)
        history: dict[str, list[dict[str, Any]]] = {}
        for event in await self.referral_history([row.id for row in rows]):
            history.setdefault(event.referral_id, []).append(_plain(event))
        return [
            ReferralRecord(
                referral=_plain(row),
                service=services[row.service_id],
                history=history.get(row.id, []),
            )
            for row in rows
        ]

    async def referral_history(self, referral_ids: Sequence[str]) -> list[Row[Any]]:
        """The referrals' events, each with the kind and subject of the secret link that
        recorded it (None for a client's or a user's)."""
        e = referral_events.c
        query = (
            sa.select(
                referral_events,
                secret_links.c.kind.label("link_kind"),
                secret_links.c.subject_id.label("link_subject_id"),
            )
            .select_from(
                referral_events.outerjoin(
                    secret_links,
                    sa.and_(
                        secret_links.c.token_hash == e.link_hash,
                        secret_links.c.clinic_id == e.clinic_id,
                    ),
                )
            )
            .where(self._scoped(referral_events), e.referral_id.in_(referral_ids))
            .order_by(e.recorded_at, e.id)
        )
        return list((await self.conn.execute(query)).all())

    async def service_referrals(
        self, service_id: str, referral_id: str | None = None
    ) -> list[Row[Any]]:
        """The referrals sent to one service (only ``referral_id``, when given), newest
        first, each with its patient's matching ``profile`` (what it says of languages and
        ways of taking part is all the inbox shows of the patient)."""
        r, p = referrals.c, patients.c
        query = (
            sa.select(
                r.id,
                r.patient_id,
                r.service_id,
                r.status,
                r.status_reason,
                r.need,
                r.note,
                r.outcome,
                r.version,
                r.created_at,
                r.updated_at,
                p.profile,
            )
            .select_from(
                referrals.outerjoin(
                    patients, sa.and_(p.clinic_id == r.clinic_id, p.id == r.patient_id)
                )
            )
            .where(self._scoped(referrals), r.service_id == service_id)
            .order_by(r.created_at.desc(), r.id.desc())
        )
        if referral_id is not None:
            query = query.where(r.id == referral_id)
        return list((await self.conn.execute(query)).all())

    async def live_service(self, service_id: str) -> Row[Any] | None:
        """The service's name and what it said of its capacity, while it is in the
        clinic's directory."""
        d = directory_services.c
        query = self._select(directory_services, d.name, d.capacity, d.capacity_at).where(
            d.id == service_id, d.deleted_at.is_(None)
        )
        return (await self.conn.execute(query)).first()

    async def move_referral(
        self,
        referral_id: str,
        *,
        from_status: str,
        version: int,
        to_status: str,
        reason: str | None,
        outcome: str | None,
        now: datetime,
    ) -> bool:
        """Compare-and-set the status: False when someone else moved it first."""
        values: dict[str, Any] = {
            "status": to_status,
            "status_reason": reason,
            "version": version + 1,
            "updated_at": now,
        }
        if outcome is not None:
            values["outcome"] = outcome
        result = await self.conn.execute(
            sa.update(referrals)
            .where(
                self._scoped(referrals),
                referrals.c.id == referral_id,
                referrals.c.status == from_status,
                referrals.c.version == version,
            )
            .values(**values)
        )
        return bool(result.rowcount)

    async def amend_outcome(
        self, referral_id: str, *, status: str, version: int, outcome: str, now: datetime
    ) -> bool:
        """Compare-and-set the outcome alone, status and its reason kept: False when
        someone else changed the referral first."""
        result = await self.conn.execute(
            sa.update(referrals)
            .where(
                self._scoped(referrals),
                referrals.c.id == referral_id,
                referrals.c.status == status,
                referrals.c.version == version,
            )
            .values(outcome=outcome, version=version + 1, updated_at=now)
        )
        return bool(result.rowcount)

    async def actor_names(
        self, user_ids: Sequence[uuid.UUID], client_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        """The clinic's users and API clients by id, as their names (others are left out)."""
        names: dict[uuid.UUID, str] = {}
        for table, ids in ((users, user_ids), (api_clients, client_ids)):
            if ids:
                query = self._select(table, table.c.id, table.c.name).where(
                    table.c.id.in_(sorted(set(ids)))
                )
                names.update({row.id: row.name for row in (await self.conn.execute(query)).all()})
        return names

    async def patient_languages(self, patient_id: str) -> list[str]:
        """The languages the patient's matching profile lists, preferred first."""
        query = self._select(patients, patients.c.profile).where(patients.c.id == patient_id)
        profile = (await self.conn.execute(query)).scalar_one_or_none() or {}
        return [str(tag) for tag in profile.get("languages") or []]

    async def clinic_name(self) -> str:
        """The referring clinic's name (FHIR requesters display it)."""
        query = sa.select(clinics.c.name).where(clinics.c.id == self.clinic_id)
        return str((await self.conn.execute(query)).scalar_one())


def _plain(row: Row[Any]) -> dict[str, Any]:
    """A row as a dict with plain ``str`` keys (SQLAlchemy's are a str subclass, which
    msgspec does not take)."""
    return {str(name): value for name, value in row._mapping.items()}


# -- the hot read ---------------------------------------------------------------------

_CLINIC = sa.bindparam("clinic_id", type_=referrals.c.clinic_id.type)
_PATIENT = sa.bindparam("patient_id", type_=referrals.c.patient_id.type)
_HISTORY = (
    "from_status",
    "to_status",
    "reason",
    "outcome",
    "client_id",
    "user_id",
    "recorded_at",
)
_LINK = ("link_kind", "link_subject_id")


def _referrals_statement() -> sa.Select[Any]:
    r = referrals.c
    page = (
        sa.select(referrals)
        .where(r.clinic_id == _CLINIC, r.patient_id == _PATIENT)
        .order_by(r.updated_at.desc(), r.id.desc())
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .subquery("r")
    )
    e = referral_events.alias("e")
    s = secret_links.alias("s")
    event = sa.func.json_build_object(
        *(part for name in _HISTORY for part in (sa.literal_column(f"'{name}'"), e.c[name])),
        *(
            part
            for name, column in zip(_LINK, (s.c.kind, s.c.subject_id), strict=True)
            for part in (sa.literal_column(f"'{name}'"), column)
        ),
    )
    history = (
        sa.select(
            sa.func.json_agg(aggregate_order_by(event, e.c.recorded_at, e.c.id)).label("events")
        )
        .select_from(
            e.outerjoin(s, sa.and_(s.c.token_hash == e.c.link_hash, s.c.clinic_id == _CLINIC))
        )
        .where(e.c.clinic_id == _CLINIC, e.c.referral_id == page.c.id)
        .lateral("h")
    )
    d = directory_services.alias("d")
    return (
        sa.select(
            page,
            d.c.details.label("service_details"),
            sa.func.coalesce(history.c.events, sa.text("'[]'")).label("history"),
        )
        .select_from(
            page.join(d, sa.and_(d.c.clinic_id == _CLINIC, d.c.id == page.c.service_id)).outerjoin(
                history, sa.true()
            )
        )
        .order_by(page.c.updated_at.desc(), page.c.id.desc())
    )


_PATIENT_REFERRALS = Compiled(_referrals_statement())


async def patient_referrals(
    db: Database, clinic_id: uuid.UUID, patient_id: str, limit: int
) -> list[ReferralRecord]:
    """The patient's referrals, most recently changed first, with services and history."""
    values = {"clinic_id": clinic_id, "patient_id": patient_id, "limit": limit}
    async with db.driver() as conn:
        rows = await conn.fetch(_PATIENT_REFERRALS.sql, *_PATIENT_REFERRALS.args(values))
    records = []
    for row in rows:
        referral = dict(row)
        records.append(
            ReferralRecord(referral, referral.pop("service_details"), referral.pop("history"))
        )
    return records
