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

from service.platform.tables import (
    audit_events,
    idempotency_keys,
    observations,
    patients,
    questionnaire_responses,
    screenings,
)
from service.screenings.records import HeldKey


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
class AuditQuery:
    patient_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0


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

    # -- audit -----------------------------------------------------------------------

    async def audit_events(self, q: AuditQuery) -> tuple[list[Row[Any]], int]:
        """One page of events, newest first, and how many match in all."""
        conditions: list[Any] = []
        if q.patient_id is not None:
            conditions.append(audit_events.c.patient_id == q.patient_id)
        if q.since is not None:
            conditions.append(audit_events.c.recorded_at >= q.since)
        if q.until is not None:
            conditions.append(audit_events.c.recorded_at < q.until)
        count = self._select(audit_events, sa.func.count()).where(*conditions)
        total = (await self.conn.execute(count)).scalar_one()
        page = (
            self._select(audit_events)
            .where(*conditions)
            .order_by(audit_events.c.recorded_at.desc(), audit_events.c.id.desc())
            .limit(q.limit)
            .offset(q.offset)
        )
        return list((await self.conn.execute(page)).all()), total

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
