"""The patients' use cases: the matching profile, the screening history with its
meaningful-change trends, the patient's referrals (what matching recommends now, and the
referrals already made), and the clinic's worklist (who needs action, which referrals to
follow up)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.engine import Row

from service.directory.service import DirectoryCache
from service.instruments.model import Definition
from service.instruments.scoring import BandResult
from service.instruments.service import Catalog
from service.matching.service import Recommendations, recommend
from service.patients.model import PatientProfile, Trend, trend
from service.patients.repository import PatientStore
from service.platform.caller import Caller
from service.platform.database import utcnow
from service.platform.lookup import NotFound, found
from service.referrals.model import OPEN, Status
from service.referrals.service import (
    Referral,
    WorklistReferrals,
    patient_referrals,
    worklist_referrals,
)
from service.screenings.service import Screenings

REFERRALS_SHOWN = 200
"""The patient's referrals listed with the recommendations, most recently changed first."""


@dataclass(frozen=True, slots=True)
class ScreeningChange:
    """One screening in a history, read against the one before it on the same instrument."""

    id: str
    completed_at: datetime
    total: float | None
    band: BandResult | None
    change: float | None
    """Total minus the previous screening's total; None for the first or an unscored one."""
    trend: Trend | None
    total_reason: str | None = None
    """Why there is no total, when there is none."""


@dataclass(frozen=True, slots=True)
class InstrumentChanges:
    definition: Definition
    screenings: list[ScreeningChange]
    """Newest first."""


@dataclass(frozen=True, slots=True)
class WorklistQuery:
    """What the worklist shows: ``status`` and ``overdue_only`` narrow the referrals,
    ``instrument`` both lists (the latest screening's, and the screening a referral was
    made from); both lists are paged together."""

    status: Status | None = None
    instrument: str | None = None
    overdue_only: bool = False
    newest_first: bool = True
    limit: int = 25
    offset: int = 0


@dataclass(frozen=True, slots=True)
class NeedsAction:
    """A patient whose latest screening is positive, with no referral under way."""

    patient_id: str
    screening_id: str
    definition: Definition
    completed_at: datetime
    total: float | None
    band_label: str | None


@dataclass(frozen=True, slots=True)
class Worklist:
    needs_action: list[NeedsAction]
    """One page, by the screening's completion."""
    needs_action_total: int
    referrals: WorklistReferrals


class Patients:
    """Patients' matching profiles, screening histories and referrals."""

    def __init__(self, caller: Caller, catalog: Catalog) -> None:
        self.caller = caller
        self.catalog = catalog
        self.screenings = Screenings(caller)

    async def put_profile(self, patient_id: str, profile: PatientProfile) -> tuple[Row[Any], bool]:
        """Create the patient or replace the profile: the stored patient, and whether it
        is new."""
        async with self.caller.transaction(PatientStore) as store:
            existed = await store.get_patient(patient_id) is not None
            await store.put_patient(patient_id, msgspec.to_builtins(profile), utcnow())
            row = await store.get_patient(patient_id)
        assert row is not None  # just written, in this transaction
        return row, not existed

    async def profile(self, patient_id: str) -> Row[Any]:
        async with self.caller.transaction(PatientStore) as store:
            row = await store.get_patient(patient_id)
        return found(row, "patient", patient_id)

    async def history(self, patient_id: str, per_instrument: int) -> list[InstrumentChanges]:
        """The newest ``per_instrument`` screenings of each instrument, each with its change
        since the one before (read one further back for the oldest shown)."""
        async with self.caller.transaction(PatientStore) as store:
            found(await store.get_patient(patient_id), "patient", patient_id)
            rows = await store.patient_screenings(patient_id, per_instrument=per_instrument + 1)
        by_instrument: dict[str, list[Any]] = {}
        for row in rows:
            by_instrument.setdefault(row.instrument, []).append(row)
        histories = []
        for instrument_id, group in by_instrument.items():
            definition = self.catalog.get(instrument_id).definition
            histories.append(
                InstrumentChanges(definition, _changes(group, definition)[:per_instrument])
            )
        return histories

    async def worklist(self, query: WorklistQuery, overdue_after: timedelta) -> Worklist:
        """Who needs action (a positive latest screening and no referral under way), and
        the referrals to follow up, a requested one not accepted within ``overdue_after``
        being overdue."""
        async with self.caller.transaction(PatientStore) as store:
            rows, total = await store.needs_action(
                open_statuses=[s.value for s in OPEN],
                instrument=query.instrument,
                newest_first=query.newest_first,
                limit=query.limit,
                offset=query.offset,
            )
        referrals = await worklist_referrals(
            self.caller,
            overdue_after=overdue_after,
            status=query.status,
            instrument=query.instrument,
            overdue_only=query.overdue_only,
            newest_first=query.newest_first,
            limit=query.limit,
            offset=query.offset,
        )
        needs = [
            NeedsAction(
                patient_id=row.patient_id,
                screening_id=row.id,
                definition=self.catalog.get(row.instrument).definition,
                completed_at=row.completed_at,
                total=row.total,
                band_label=row.band_label,
            )
            for row in rows
        ]
        return Worklist(needs, total, referrals)

    async def referrals(
        self, patient_id: str, cache: DirectoryCache, limit: int, explain: bool
    ) -> tuple[Recommendations, list[Referral]]:
        """What matching recommends from the latest screenings and the stored profile, and
        the referrals already made."""
        db, clinic_id = self.caller.db, self.caller.clinic_id
        context = await self.screenings.context(patient_id)
        if context.profile is None:
            raise NotFound("patient", patient_id)
        recommendations = await recommend(
            db,
            clinic_id,
            cache,
            self.catalog,
            context.latest,
            msgspec.convert(context.profile, PatientProfile),
            limit=limit,
            explain=explain,
        )
        made = await patient_referrals(db, clinic_id, patient_id, limit=REFERRALS_SHOWN)
        return recommendations, made


def _changes(group: list[Any], definition: Definition) -> list[ScreeningChange]:
    """Each screening (newest first) with its change from the next older one."""
    changes = []
    for row, older in zip(group, [*group[1:], None], strict=True):
        total = row.score["total"]
        older_total = older.score["total"] if older is not None else None
        change = (
            round(total - older_total, 4) if total is not None and older_total is not None else None
        )
        band = row.score.get("band")
        changes.append(
            ScreeningChange(
                id=row.id,
                completed_at=row.completed_at,
                total=total,
                band=msgspec.convert(band, BandResult) if band else None,
                change=change,
                trend=trend(change, definition.direction, definition.meaningful_change),
                total_reason=row.score.get("total_reason"),
            )
        )
    return changes
