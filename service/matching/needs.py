"""Scores -> needs: the signals a patient's latest screenings raise, with severity.

Only the most recent screening of each construct counts, so a later negative screen
clears an earlier positive one. A PEG mean of 7 or more is context, not a need: it
favours services the patient can use from home.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from service.instruments.model import Construct, Severity, Signal

SEVERITY_RANK = {Severity.NONE: 0, Severity.MILD: 1, Severity.MODERATE: 2, Severity.SEVERE: 3}
HIGH_PAIN_INTERFERENCE = 7.0
"""PEG mean at or above which pain is taken to limit travel (the 7-10 third-party band)."""


@dataclass(frozen=True, slots=True)
class ScreeningSummary:
    """What needs are derived from: one stored screening."""

    screening_id: str
    instrument: str
    instrument_title: str
    construct: Construct
    completed_at: datetime
    total: float | None
    positive: bool
    signal: Signal | None
    severity: Severity
    band_label: str | None


@dataclass(frozen=True, slots=True)
class Need:
    signal: Signal
    severity: Severity
    screening_id: str
    instrument: str
    instrument_title: str
    completed_at: datetime
    band_label: str


@dataclass(frozen=True, slots=True)
class Needs:
    needs: tuple[Need, ...]
    high_pain_interference: bool = False
    pain_screening_id: str | None = None

    @property
    def most_severe(self) -> Severity:
        return max(
            (n.severity for n in self.needs), key=SEVERITY_RANK.__getitem__, default=Severity.NONE
        )


def latest_per_construct(screenings: Iterable[ScreeningSummary]) -> list[ScreeningSummary]:
    latest: dict[Construct, ScreeningSummary] = {}
    for s in screenings:
        held = latest.get(s.construct)
        if held is None or (s.completed_at, s.screening_id) > (
            held.completed_at,
            held.screening_id,
        ):
            latest[s.construct] = s
    return sorted(latest.values(), key=lambda s: s.construct.value)


def derive(screenings: Iterable[ScreeningSummary]) -> Needs:
    """The needs raised by the latest screening of each construct, one per signal."""
    by_signal: dict[Signal, Need] = {}
    high_pain = False
    pain_screening: str | None = None
    for s in latest_per_construct(screenings):
        if s.construct is Construct.PAIN:
            high_pain = s.total is not None and s.total >= HIGH_PAIN_INTERFERENCE
            pain_screening = s.screening_id if high_pain else None
            continue
        if not s.positive or s.signal is None:
            continue
        need = Need(
            signal=s.signal,
            severity=s.severity,
            screening_id=s.screening_id,
            instrument=s.instrument,
            instrument_title=s.instrument_title,
            completed_at=s.completed_at,
            band_label=s.band_label or "",
        )
        held = by_signal.get(s.signal)
        if held is None or SEVERITY_RANK[need.severity] > SEVERITY_RANK[held.severity]:
            by_signal[s.signal] = need
    ordered = sorted(by_signal.values(), key=lambda n: (-SEVERITY_RANK[n.severity], n.signal.value))
    return Needs(tuple(ordered), high_pain, pain_screening)
