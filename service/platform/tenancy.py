"""Clinic-scoped data access: the caller's clinic is applied to every query here.

A :class:`ClinicStore` is bound to one connection (one transaction) and one clinic.
Every read goes through :meth:`ClinicStore._select` and every write through
:meth:`ClinicStore._row`, both of which add the clinic. The hot paths' statements
(service/screenings/repository.py) take the clinic as their first parameter;
tests/db/test_tenancy.py covers both.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.database import new_id
from service.platform.tables import (
    clinics,
    directory_services,
    idempotency_keys,
    observations,
    patients,
    questionnaire_responses,
    referral_events,
    referrals,
    screenings,
)
from service.screenings.records import HeldKey, ReferralRecord


@dataclass(frozen=True, slots=True)
class ObservationQuery:
    patient_id: str | None = None
    codes: Sequence[tuple[str | None, str]] = ()
    """(system or None for any, code) pairs; a match on any of them counts."""
    date_filters: Sequence[tuple[str, datetime]] = ()
    """(prefix, instant) with prefix in eq, ge, gt, le, lt, applied to effective time."""
    updated_filters: Sequence[tuple[str, datetime]] = ()
    sort_descending: bool = True
    sort_by: str = "effective_at"
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ServiceQuery:
    category: str | None = None
    condition: str | None = None
    language: str | None = None
    modality: str | None = None
    accepting: bool | None = None
    bounds: Sequence[tuple[float, float, float, float]] = ()
    """(min lat, max lat, min lon, max lon) boxes around a ``near`` search; any may hold."""


@dataclass(frozen=True, slots=True)
class ReferralQuery:
    statuses: Sequence[str] = ()
    """Any of these; empty means any status."""
    patient_id: str | None = None
    service_id: str | None = None
    updated_since: datetime | None = None
    updated_filters: Sequence[tuple[str, datetime]] = ()
    limit: int = 50
    offset: int = 0


_COMPARATORS = {
    "eq": lambda column, value: column == value,
    "ge": lambda column, value: column >= value,
    "gt": lambda column, value: column > value,
    "le": lambda column, value: column <= value,
    "lt": lambda column, value: column < value,
}


class ClinicScoped:
    """The base of every feature's repository: bound to one connection (one transaction)
    and one clinic, and adding the clinic to every read and write."""

    def __init__(self, conn: AsyncConnection, clinic_id: uuid.UUID) -> None:
        self.conn = conn
        self.clinic_id = clinic_id

    def _select(self, table: sa.Table, *columns: Any) -> sa.Select[Any]:
        return sa.select(*(columns or (table,))).where(self._scoped(table))

    def _scoped(self, table: sa.Table) -> Any:
        return table.c.clinic_id == self.clinic_id

    def _row(self, **values: Any) -> dict[str, Any]:
        return {**values, "clinic_id": self.clinic_id}

    def _insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table)


class ClinicStore(ClinicScoped):
    # -- patients --------------------------------------------------------------------

    async def get_patient(self, patient_id: str) -> Row[Any] | None:
        result = await self.conn.execute(self._select(patients).where(patients.c.id == patient_id))
        return result.first()

    async def put_patient(
        self, patient_id: str, profile: dict[str, Any] | None, now: datetime
    ) -> None:
        """Create the patient if new; replace the profile when one is given."""
        statement = self._insert(patients).values(
            self._row(id=patient_id, profile=profile or {}, created_at=now, updated_at=now)
        )
        keys = [patients.c.clinic_id, patients.c.id]
        if profile is None:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        else:
            statement = statement.on_conflict_do_update(
                index_elements=keys,
                set_={"profile": statement.excluded.profile, "updated_at": now},
            )
        await self.conn.execute(statement)

    # -- questionnaire responses ----------------------------------------------------

    async def find_questionnaire_responses(
        self, identifier_system: str | None, identifier_value: str
    ) -> list[Row[Any]]:
        query = self._select(questionnaire_responses).where(
            questionnaire_responses.c.identifier_value == identifier_value
        )
        if identifier_system is not None:
            query = query.where(questionnaire_responses.c.identifier_system == identifier_system)
        return list((await self.conn.execute(query.limit(2))).all())

    async def get_questionnaire_response(self, qr_id: str) -> Row[Any] | None:
        query = self._select(questionnaire_responses).where(questionnaire_responses.c.id == qr_id)
        return (await self.conn.execute(query)).first()

    # -- screenings and observations -------------------------------------------------

    async def get_screening(self, screening_id: str) -> Row[Any] | None:
        query = self._select(screenings).where(screenings.c.id == screening_id)
        return (await self.conn.execute(query)).first()

    async def screenings_for_questionnaire_response(self, qr_id: str) -> list[Row[Any]]:
        query = (
            self._select(screenings)
            .where(screenings.c.questionnaire_response_id == qr_id)
            .order_by(screenings.c.instrument)
        )
        return list((await self.conn.execute(query)).all())

    async def patient_screenings(self, patient_id: str, per_instrument: int) -> list[Row[Any]]:
        """The newest ``per_instrument`` screenings of each instrument, newest first."""
        rank = (
            sa.func.row_number()
            .over(
                partition_by=screenings.c.instrument,
                order_by=(screenings.c.completed_at.desc(), screenings.c.id.desc()),
            )
            .label("rank")
        )
        ranked = (
            self._select(screenings, screenings, rank)
            .where(screenings.c.patient_id == patient_id)
            .subquery()
        )
        query = (
            sa.select(ranked)
            .where(ranked.c.rank <= per_instrument)
            .order_by(ranked.c.instrument, ranked.c.completed_at.desc(), ranked.c.id.desc())
        )
        return list((await self.conn.execute(query)).all())

    async def observations_of(self, screening_ids: Sequence[str]) -> list[Row[Any]]:
        query = (
            self._select(observations, observations.c.screening_id, observations.c.resource)
            .where(observations.c.screening_id.in_(screening_ids))
            .order_by(observations.c.screening_id, observations.c.position)
        )
        return list((await self.conn.execute(query)).all())

    async def get_observation(self, observation_id: str) -> Row[Any] | None:
        query = self._select(observations).where(observations.c.id == observation_id)
        return (await self.conn.execute(query)).first()

    # -- idempotency keys ------------------------------------------------------------

    async def get_idempotency_key(self, route: str, key: str) -> HeldKey | None:
        query = self._select(
            idempotency_keys,
            idempotency_keys.c.fingerprint,
            idempotency_keys.c.state,
            idempotency_keys.c.status_code,
            idempotency_keys.c.response,
            idempotency_keys.c.response_headers,
            idempotency_keys.c.resource_id,
        ).where(idempotency_keys.c.route == route, idempotency_keys.c.key == key)
        found = (await self.conn.execute(query)).first()
        return HeldKey(*found) if found is not None else None

    async def clinic_name(self) -> str:
        query = sa.select(clinics.c.name).where(clinics.c.id == self.clinic_id)
        return str((await self.conn.execute(query)).scalar_one())

    # -- directory -------------------------------------------------------------------

    async def save_service(
        self,
        service_id: str,
        source_system: str,
        source_id: str,
        details: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Insert, or update by (source system, source id); True when new.

        One upsert, so that concurrent imports of one record neither fail on the unique
        source nor write it twice: the later waits for the earlier and updates its row."""
        columns = _service_columns(details)
        statement = self._insert(directory_services).values(
            self._row(
                id=service_id,
                source_system=source_system,
                source_id=source_id,
                details=details,
                created_at=now,
                updated_at=now,
                deleted_at=None,
                **columns,
            )
        )
        changed = ("details", *columns)
        statement = statement.on_conflict_do_update(
            index_elements=[
                directory_services.c.clinic_id,
                directory_services.c.source_system,
                directory_services.c.source_id,
            ],
            set_={
                **{name: statement.excluded[name] for name in changed},
                "updated_at": now,
                "deleted_at": None,
            },
        ).returning(directory_services.c.id)
        stored = (await self.conn.execute(statement)).scalar_one()
        return bool(stored == service_id)

    async def get_service(self, service_id: str, withdrawn: bool = False) -> Row[Any] | None:
        """A live service; with ``withdrawn``, also one deleted from the directory."""
        query = self._select(directory_services).where(directory_services.c.id == service_id)
        if not withdrawn:
            query = query.where(directory_services.c.deleted_at.is_(None))
        return (await self.conn.execute(query)).first()

    async def services_by_id(self, service_ids: Sequence[str]) -> dict[str, Row[Any]]:
        query = self._select(directory_services).where(directory_services.c.id.in_(service_ids))
        return {row.id: row for row in (await self.conn.execute(query)).all()}

    async def directory_stamp(self) -> tuple[int, datetime | None]:
        """Changes whenever the directory does: (rows, newest update)."""
        query = self._select(
            directory_services, sa.func.count(), sa.func.max(directory_services.c.updated_at)
        )
        count, newest = (await self.conn.execute(query)).one()
        return count, newest

    async def live_services(self) -> list[Row[Any]]:
        query = self._select(directory_services).where(directory_services.c.deleted_at.is_(None))
        return list((await self.conn.execute(query.order_by(directory_services.c.id))).all())

    async def replace_service(
        self, service_id: str, details: dict[str, Any], now: datetime
    ) -> bool:
        result = await self.conn.execute(
            sa.update(directory_services)
            .where(
                self._scoped(directory_services),
                directory_services.c.id == service_id,
                directory_services.c.deleted_at.is_(None),
            )
            .values(details=details, updated_at=now, **_service_columns(details))
        )
        return bool(result.rowcount)

    async def delete_service(self, service_id: str, now: datetime) -> bool:
        """Withdraw a service; referrals already made keep pointing at it."""
        result = await self.conn.execute(
            sa.update(directory_services)
            .where(
                self._scoped(directory_services),
                directory_services.c.id == service_id,
                directory_services.c.deleted_at.is_(None),
            )
            .values(deleted_at=now, updated_at=now)
        )
        return bool(result.rowcount)

    async def search_services(self, q: ServiceQuery) -> list[Row[Any]]:
        c = directory_services.c
        query = self._select(directory_services).where(c.deleted_at.is_(None))
        if q.category is not None:
            query = query.where(c.category == q.category)
        if q.condition is not None:
            query = query.where(
                sa.or_(sa.func.cardinality(c.conditions) == 0, c.conditions.contains([q.condition]))
            )
        if q.language is not None:
            query = query.where(c.languages.contains([q.language]))
        if q.modality is not None:
            query = query.where(c.modalities.contains([q.modality]))
        if q.accepting is not None:
            query = query.where(c.accepting.is_(q.accepting))
        if q.bounds:
            query = query.where(
                sa.or_(
                    *(
                        sa.and_(
                            c.latitude.between(low_lat, high_lat),
                            c.longitude.between(low_lon, high_lon),
                        )
                        for low_lat, high_lat, low_lon, high_lon in q.bounds
                    )
                )
            )
        return list((await self.conn.execute(query.order_by(c.name, c.id))).all())

    # -- referrals -------------------------------------------------------------------

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
        for prefix, instant in q.updated_filters:
            conditions.append(_COMPARATORS[prefix](referrals.c.updated_at, instant))
        count = self._select(referrals, sa.func.count()).where(*conditions)
        total = (await self.conn.execute(count)).scalar_one()
        page = (
            self._select(referrals)
            .where(*conditions)
            .order_by(referrals.c.updated_at.desc(), referrals.c.id.desc())
            .limit(q.limit)
            .offset(q.offset)
        )
        return list((await self.conn.execute(page)).all()), total

    async def with_history(self, rows: Sequence[Row[Any]]) -> list[ReferralRecord]:
        """Referral rows with their services' entries and their history."""
        if not rows:
            return []
        services = await self.services_by_id(sorted({row.service_id for row in rows}))
        history: dict[str, list[dict[str, Any]]] = {}
        for event in await self.referral_history([row.id for row in rows]):
            history.setdefault(event.referral_id, []).append(_plain(event))
        return [
            ReferralRecord(
                referral=_plain(row),
                service=services[row.service_id].details,
                history=history.get(row.id, []),
            )
            for row in rows
        ]

    async def referral_history(self, referral_ids: Sequence[str]) -> list[Row[Any]]:
        query = (
            self._select(referral_events)
            .where(referral_events.c.referral_id.in_(referral_ids))
            .order_by(referral_events.c.recorded_at, referral_events.c.id)
        )
        return list((await self.conn.execute(query)).all())

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


def _service_columns(details: dict[str, Any]) -> dict[str, Any]:
    location = details.get("location") or {}
    languages = sorted({tag.split("-", 1)[0].lower() for tag in details.get("languages", [])})
    return {
        "name": details["name"],
        "category": details["category"],
        "accepting": bool(details.get("accepting_referrals", True))
        and details.get("capacity") != 0,
        "conditions": list(details.get("conditions", [])),
        "modalities": list(details.get("modalities", [])),
        "languages": languages,
        "latitude": location.get("lat"),
        "longitude": location.get("lon"),
    }


def _plain(row: Row[Any]) -> dict[str, Any]:
    """A row as a dict with plain ``str`` keys (SQLAlchemy's are a str subclass, which
    msgspec does not take)."""
    return {str(name): value for name, value in row._mapping.items()}
