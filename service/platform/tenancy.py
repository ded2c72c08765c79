"""Tenancy inside the repository: every feature's store is a :class:`ClinicScoped`, bound
to one connection (one transaction) and one clinic. Every read goes through
:meth:`ClinicScoped._select` and every write through :meth:`ClinicScoped._row`, both of
which add the clinic. The hot paths' compiled statements (service/screenings/repository.py,
service/referrals/repository.py, the audit batch) take the clinic as their first parameter;
tests/platform/test_tenancy.py covers both.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection


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
