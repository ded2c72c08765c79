"""The patients' use cases: the matching profile, the screening history with its
meaningful-change trends, and the patient's referrals (what matching recommends now, and
the referrals already made)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
from service.referrals.service import Referral, patient_referrals
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


@dataclass(frozen=True, slots=True)
class InstrumentChanges:
    definition: Definition
    screenings: list[ScreeningChange]
    """Newest first."""


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
            )
        )
    return changes
