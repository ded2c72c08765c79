"""The patients' queries: the matching profile and the screening history, scoped by clinic."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from service.platform.tables import ENTERED_IN_ERROR, patients, screenings
from service.platform.tenancy import ClinicScoped


class PatientStore(ClinicScoped):
    async def get_patient(self, patient_id: str) -> Row[Any] | None:
        result = await self.conn.execute(self._select(patients).where(patients.c.id == patient_id))
        return result.first()

    async def put_patient(self, patient_id: str, profile: dict[str, Any], now: datetime) -> None:
        """Create the patient, or replace the profile of the one stored."""
        statement = self._insert(patients).values(
            self._row(id=patient_id, profile=profile, created_at=now, updated_at=now)
        )
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=[patients.c.clinic_id, patients.c.id],
                set_={"profile": statement.excluded.profile, "updated_at": now},
            )
        )

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
            .where(
                screenings.c.patient_id == patient_id,
                screenings.c.status != ENTERED_IN_ERROR,
            )
            .subquery()
        )
        query = (
            sa.select(ranked)
            .where(ranked.c.rank <= per_instrument)
            .order_by(ranked.c.instrument, ranked.c.completed_at.desc(), ranked.c.id.desc())
        )
        return list((await self.conn.execute(query)).all())
