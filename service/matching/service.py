"""Needs and recommendations for a patient: the latest screenings, the profile, the directory.

The directory's match candidates come from the directory's DirectoryCache: built once per
clinic and reused until the directory changes, so a recommendation costs no round trip while
they are fresh. A profile without languages is matched in the clinic's languages, and the
recommendations carry warnings naming what the profile lacks (see ``matching.profile_warnings``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from service.directory.model import (
    NO_FIGURES,
    Capacity,
    Category,
    Contact,
    DirectoryService,
    ResponseFigures,
)
from service.directory.service import DirectoryCache
from service.instruments.model import Severity, Signal
from service.instruments.service import Catalog
from service.matching.model import (
    MatchResult,
    ProfileField,
    ProfileWarning,
    WarningCode,
    match,
    prepare,
    profile_warnings,
)
from service.matching.needs import Needs, ScreeningSummary, derive
from service.patients.model import PatientProfile
from service.platform.database import Database
from service.screenings.records import LatestScreening


class ReasonView(msgspec.Struct):
    code: str
    text: str


class ServiceSummary(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    organization: str
    category: Category
    modalities: list[str]
    conditions: list[str] = []
    languages: list[str] = []
    address: str | None = None
    schedule: str | None = None
    cost: str | None = None
    contact: Contact | None = None
    referral_method: str | None = None
    capacity_status: Capacity | None = None
    """What the service last said of its intake through its inbox (left out: nothing)."""


class RecommendationView(msgspec.Struct):
    service: ServiceSummary
    score: float
    reasons: list[ReasonView]
    answers: list[Signal]
    """The needs this service answers."""
    distance_km: float | None = None
    answered: int = 0
    """The clinic's referrals this service accepted or declined."""
    acceptance_rate: float | None = None
    """Accepted / answered (0 to 1); null below 5 answered."""
    median_days_to_accept: float | None = None
    """Median days from request to acceptance; null below 5 answered."""


class ExcludedView(msgspec.Struct):
    service: ServiceSummary
    reasons: list[ReasonView]


class NeedView(msgspec.Struct):
    signal: Signal
    severity: Severity
    screening_id: str
    instrument: str
    completed_at: datetime
    band: str


class WarningView(msgspec.Struct):
    code: WarningCode
    field: ProfileField
    """The profile field missing."""
    message: str
    """What matching did without it."""


class Recommendations(msgspec.Struct):
    needs: list[NeedView]
    high_pain_interference: bool
    """A recent PEG of 7 or more: services usable from home rank higher."""
    items: list[RecommendationView]
    considered: int
    """Directory services looked at."""
    warnings: list[WarningView]
    """What the patient's profile lacks that matching filters on, each with what was done
    without it: missing languages are taken to be the clinic's. Empty when the profile is
    complete, or when there are no needs (nothing was matched)."""
    excluded: list[ExcludedView] | None = None
    """Services filtered out, each with why (when asked for with explain=true)."""


def summary(service: DirectoryService) -> ServiceSummary:
    return ServiceSummary(
        id=service.id,
        name=service.name,
        organization=service.organization,
        category=service.category,
        modalities=[m.value for m in service.modalities],
        conditions=[c.value for c in service.conditions],
        languages=list(service.languages),
        address=service.address,
        schedule=service.schedule,
        cost=service.cost,
        contact=service.contact,
        referral_method=service.referral_method,
        capacity_status=service.capacity_status,
    )


def _no_figures(service_id: str) -> ResponseFigures:
    return NO_FIGURES


def _figure_fields(figures: ResponseFigures) -> dict[str, Any]:
    return {
        "answered": figures.answered,
        "acceptance_rate": figures.acceptance_rate,
        "median_days_to_accept": figures.median_days_to_accept,
    }


def view(
    result: MatchResult,
    needs: Needs,
    warnings: Sequence[ProfileWarning] = (),
    figures: Callable[[str], ResponseFigures] = _no_figures,
) -> Recommendations:
    return Recommendations(
        needs=[
            NeedView(
                signal=n.signal,
                severity=n.severity,
                screening_id=n.screening_id,
                instrument=n.instrument,
                completed_at=n.completed_at,
                band=n.band_label,
            )
            for n in needs.needs
        ],
        high_pain_interference=needs.high_pain_interference,
        items=[
            RecommendationView(
                service=summary(r.service),
                score=r.score,
                reasons=[ReasonView(x.code, x.text) for x in r.reasons],
                answers=list(r.answers),
                distance_km=r.distance_km,
                **_figure_fields(figures(r.service.id)),
            )
            for r in result.recommendations
        ],
        considered=result.considered,
        warnings=[WarningView(w.code, w.field, w.message) for w in warnings],
        excluded=[
            ExcludedView(summary(e.service), [ReasonView(x.code, x.text) for x in e.reasons])
            for e in result.excluded
        ]
        if result.excluded
        else None,
    )


def screening_summary(row: LatestScreening, catalog: Catalog) -> ScreeningSummary | None:
    instrument = catalog.instruments.get(row.instrument)
    if instrument is None:
        return None
    band = row.score.get("band") or {}
    return ScreeningSummary(
        screening_id=row.id,
        instrument=row.instrument,
        instrument_title=instrument.definition.short_title,
        construct=instrument.definition.construct,
        completed_at=row.completed_at,
        total=row.score.get("total"),
        positive=bool(band.get("positive")),
        signal=Signal(band["signal"]) if band.get("signal") else None,
        severity=Severity(band.get("severity", "none")),
        band_label=band.get("label"),
    )


async def recommend(
    db: Database,
    clinic_id: uuid.UUID,
    cache: DirectoryCache,
    catalog: Catalog,
    latest: Sequence[LatestScreening],
    profile: PatientProfile,
    extra: Sequence[ScreeningSummary] = (),
    limit: int = 10,
    explain: bool = False,
) -> Recommendations:
    """Recommendations from the patient's latest screenings (plus ``extra``, not yet stored)."""
    summaries = [s for row in latest if (s := screening_summary(row, catalog)) is not None]
    needs = derive([*summaries, *extra])
    if not needs.needs:
        return view(match(needs, profile, prepare(())), needs)
    directory = await cache.directory(db, clinic_id)
    result = match(
        needs,
        profile,
        directory.candidates,
        limit=limit,
        explain_excluded=explain,
        clinic_languages=directory.languages,
    )
    return view(result, needs, profile_warnings(profile, directory.languages), directory.figures_of)
