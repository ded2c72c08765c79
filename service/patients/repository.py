"""The patients' queries: the matching profile, the screening history and the worklist's
patients who need action, scoped by clinic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.engine import Row

from service.platform.tables import ENTERED_IN_ERROR, patients, referrals, screenings
from service.platform.tenancy import ClinicScoped

WITHDRAWN = sa.literal_column(f"'{ENTERED_IN_ERROR}'", sa.String)
"""A constant in the statement, not a parameter: the planner then always knows a query
on screenings that are not withdrawn may use ix_screenings_latest (a partial index)."""


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

    async def needs_action(
        self,
        *,
        open_statuses: Sequence[str],
        instrument: str | None,
        newest_first: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[Row[Any]], int]:
        """One page of the patients whose latest screening (by ``completed_at``, of every
        instrument, entered-in-error ones aside) is positive and who have no referral in
        ``open_statuses``; and how many there are in all.

        One statement: the latest screening per patient walks ``ix_screenings_latest`` (no
        sort, no heap), and only the page's rows are read from the table."""
        s = screenings.c
        latest = (
            self._select(screenings, s.patient_id, s.id, s.instrument, s.completed_at, s.positive)
            .ext(distinct_on(s.patient_id))
            .where(s.status != WITHDRAWN)
            .order_by(s.patient_id, s.completed_at.desc(), s.id.desc())
            .subquery("latest")
        )
        # NOT IN, not NOT EXISTS: a hashed subplan read once, whatever the planner expects
        # of the rows before it (patient_id is never null).
        referred = self._select(referrals, referrals.c.patient_id).where(
            referrals.c.status.in_(open_statuses)
        )
        conditions: list[Any] = [
            latest.c.positive.is_(True),
            latest.c.patient_id.not_in(referred),
        ]
        if instrument is not None:
            conditions.append(latest.c.instrument == instrument)
        candidates = sa.select(latest).where(*conditions).cte("candidates")
        counted = sa.select(sa.func.count().label("found")).select_from(candidates).subquery("n")
        order = (
            (candidates.c.completed_at.desc(), candidates.c.id.desc())
            if newest_first
            else (candidates.c.completed_at, candidates.c.id)
        )
        page = (
            sa.select(candidates.c.id).order_by(*order).limit(limit).offset(offset).subquery("page")
        )
        shown = (
            self._select(
                screenings,
                s.id,
                s.patient_id,
                s.instrument,
                s.completed_at,
                s.total,
                s.score["band"]["label"].astext.label("band_label"),
            )
            .where(s.id.in_(sa.select(page.c.id)))
            .subquery("shown")
        )
        shown_order = (
            (shown.c.completed_at.desc(), shown.c.id.desc())
            if newest_first
            else (shown.c.completed_at, shown.c.id)
        )
        query = (
            sa.select(counted.c.found, shown)
            .select_from(counted.outerjoin(shown, sa.true()))
            .order_by(*shown_order)
        )
        rows = list((await self.conn.execute(query)).all())
        found = rows[0].found if rows else 0
        return [row for row in rows if row.id is not None], found
