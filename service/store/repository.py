"""Clinic-scoped data access: the one place that applies the caller's clinic to queries.

A :class:`ClinicStore` is bound to one connection (one transaction) and one clinic.
Every read goes through :meth:`ClinicStore._select` and every write through
:meth:`ClinicStore._row`, both of which add the clinic; there is no other way in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.database import as_utc, new_id
from service.store.tables import (
    audit_events,
    idempotency_keys,
    observations,
    patients,
    questionnaire_responses,
    screenings,
)


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


_COMPARATORS = {
    "eq": lambda column, value: column == value,
    "ge": lambda column, value: column >= value,
    "gt": lambda column, value: column > value,
    "le": lambda column, value: column <= value,
    "lt": lambda column, value: column < value,
}


class ClinicStore:
    def __init__(self, conn: AsyncConnection, clinic_id: uuid.UUID) -> None:
        self.conn = conn
        self.clinic_id = clinic_id

    # -- the scoping primitives ------------------------------------------------------

    def _select(self, table: sa.Table, *columns: Any) -> sa.Select[Any]:
        return sa.select(*(columns or (table,))).where(table.c.clinic_id == self.clinic_id)

    def _row(self, **values: Any) -> dict[str, Any]:
        return {**values, "clinic_id": self.clinic_id}

    def _insert(self, table: sa.Table) -> Any:
        module = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        return module.insert(table)

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

    async def insert_questionnaire_response(self, **values: Any) -> bool:
        """Store a QuestionnaireResponse; False when its identifier is already stored."""
        statement = (
            self._insert(questionnaire_responses)
            .values(self._row(**values))
            .on_conflict_do_nothing()
            .returning(questionnaire_responses.c.id)
        )
        return (await self.conn.execute(statement)).first() is not None

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

    async def insert_screening(self, **values: Any) -> None:
        await self.conn.execute(sa.insert(screenings).values(self._row(**values)))

    async def insert_observations(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(sa.insert(observations), [self._row(**row) for row in rows])

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
            .order_by(observations.c.screening_id, observations.c.id)
        )
        return list((await self.conn.execute(query)).all())

    async def get_observation(self, observation_id: str) -> Row[Any] | None:
        query = self._select(observations).where(observations.c.id == observation_id)
        return (await self.conn.execute(query)).first()

    async def search_observations(self, q: ObservationQuery) -> tuple[list[Row[Any]], int]:
        conditions: list[Any] = []
        if q.patient_id is not None:
            conditions.append(observations.c.patient_id == q.patient_id)
        if q.codes:
            conditions.append(
                sa.or_(
                    *(
                        sa.and_(observations.c.code == code, observations.c.code_system == system)
                        if system
                        else observations.c.code == code
                        for system, code in q.codes
                    )
                )
            )
        for prefix, instant in q.date_filters:
            conditions.append(_COMPARATORS[prefix](observations.c.effective_at, as_utc(instant)))
        for prefix, instant in q.updated_filters:
            conditions.append(_COMPARATORS[prefix](observations.c.last_updated, as_utc(instant)))
        count = self._select(observations, sa.func.count()).where(*conditions)
        total = (await self.conn.execute(count)).scalar_one()
        column = observations.c[q.sort_by]
        order = (
            (column.desc(), observations.c.id.desc())
            if q.sort_descending
            else (
                column.asc(),
                observations.c.id.asc(),
            )
        )
        page = (
            self._select(observations, observations.c.resource)
            .where(*conditions)
            .order_by(*order)
            .limit(q.limit)
            .offset(q.offset)
        )
        return list((await self.conn.execute(page)).all()), total

    # -- audit -----------------------------------------------------------------------

    async def record_audit(
        self,
        *,
        client_id: uuid.UUID,
        action: str,
        resource_type: str,
        resource_id: str | None,
        patient_id: str | None,
        status_code: int,
        at: datetime,
    ) -> None:
        await self.conn.execute(
            sa.insert(audit_events).values(
                self._row(
                    id=new_id(),
                    client_id=client_id,
                    action=action,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    patient_id=patient_id,
                    outcome="success" if status_code < 400 else "failure",
                    status_code=status_code,
                    recorded_at=at,
                )
            )
        )

    async def audit_events(self, q: AuditQuery) -> list[Row[Any]]:
        query = self._select(audit_events)
        if q.patient_id is not None:
            query = query.where(audit_events.c.patient_id == q.patient_id)
        if q.since is not None:
            query = query.where(audit_events.c.recorded_at >= as_utc(q.since))
        if q.until is not None:
            query = query.where(audit_events.c.recorded_at < as_utc(q.until))
        query = (
            query.order_by(audit_events.c.recorded_at.desc(), audit_events.c.id.desc())
            .limit(q.limit)
            .offset(q.offset)
        )
        return list((await self.conn.execute(query)).all())

    # -- idempotency keys ------------------------------------------------------------

    async def claim_idempotency_key(
        self, route: str, key: str, fingerprint: str, now: datetime, stale_before: datetime
    ) -> Row[Any] | None:
        """Claim the key for this request. None when claimed; else the row that holds it.

        A claim left pending before ``stale_before`` (its request died) is taken over.
        """
        inserted = await self.conn.execute(
            self._insert(idempotency_keys)
            .values(
                self._row(
                    route=route, key=key, fingerprint=fingerprint, state="pending", created_at=now
                )
            )
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        if inserted.first() is not None:
            return None
        where = (
            idempotency_keys.c.clinic_id == self.clinic_id,
            idempotency_keys.c.route == route,
            idempotency_keys.c.key == key,
        )
        taken_over = await self.conn.execute(
            sa.update(idempotency_keys)
            .where(
                *where,
                idempotency_keys.c.state == "pending",
                idempotency_keys.c.fingerprint == fingerprint,
                idempotency_keys.c.created_at < stale_before,
            )
            .values(created_at=now)
            .returning(idempotency_keys.c.key)
        )
        if taken_over.first() is not None:
            return None
        return (await self.conn.execute(self._select(idempotency_keys).where(*where[1:]))).first()

    async def complete_idempotency_key(
        self, route: str, key: str, status_code: int, response: bytes
    ) -> None:
        await self.conn.execute(
            sa.update(idempotency_keys)
            .where(
                idempotency_keys.c.clinic_id == self.clinic_id,
                idempotency_keys.c.route == route,
                idempotency_keys.c.key == key,
            )
            .values(state="done", status_code=status_code, response=response)
        )

    async def release_idempotency_key(self, route: str, key: str) -> None:
        await self.conn.execute(
            sa.delete(idempotency_keys).where(
                idempotency_keys.c.clinic_id == self.clinic_id,
                idempotency_keys.c.route == route,
                idempotency_keys.c.key == key,
                idempotency_keys.c.state == "pending",
            )
        )
