"""Clinic-scoped data access: the caller's clinic is applied to every query here.

A :class:`ClinicStore` is bound to one connection (one transaction) and one clinic.
Every read goes through :meth:`ClinicStore._select` and every write through
:meth:`ClinicStore._row`, both of which add the clinic. The hot paths' statements
(service/screenings/repository.py) take the clinic as their first parameter;
tests/db/test_tenancy.py covers both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.tables import (
    audit_events,
)


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
