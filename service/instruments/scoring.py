"""Answers -> Score, exactly as each instrument's definition says.

Pure and fast: the definition was resolved into lookups at load time, so scoring is a
handful of dictionary reads and one addition per item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

import msgspec

from service.instruments.model import Band, Instrument, Method, Scale

AnswerValue = int | float | str | bool | None


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with a submission, named by its JSON path."""

    field: str
    message: str
    code: str


class AnswersInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class BandResult(msgspec.Struct, frozen=True):
    code: str
    label: str
    positive: bool
    severity: str
    signal: str | None
    provenance: str

    @classmethod
    def of(cls, band: Band) -> BandResult:
        return cls(
            code=band.code,
            label=band.label,
            positive=band.positive,
            severity=band.severity.value,
            signal=band.signal.value if band.signal else None,
            provenance=band.provenance.value,
        )


class Score(msgspec.Struct, frozen=True):
    instrument: str
    total: float | None
    """The instrument's reported score: a sum, a mean, a 0-100 transform or a T-score."""
    raw: int | None
    """Sum of the answered items after reverse keying (the count, for dichotomous scales)."""
    subscales: dict[str, float | None]
    band: BandResult | None
    missing: list[str]
    """linkIds not answered, or answered with a recorded refusal."""
    total_reason: str | None = None
    """Why ``total`` is null, when it is."""
    subscale_bands: dict[str, BandResult] = {}
    subscale_reasons: dict[str, str] = {}
    standard_error: float | None = None


def validate(instrument: Instrument, answers: Iterable[tuple[str, AnswerValue]]) -> dict[str, int]:
    """Check every answer against the definition and report every problem at once.

    ``answers`` are (linkId, value) pairs so that a repeated linkId can be seen.
    A ``None`` value means the item was left unanswered.
    """
    problems: list[Problem] = []
    accepted: dict[str, int] = {}
    seen: set[str] = set()
    for link_id, value in answers:
        where = f"answers.{link_id}"
        if link_id in seen:
            problems.append(Problem(where, "answered more than once", "duplicate"))
            continue
        seen.add(link_id)
        options = instrument.options.get(link_id)
        if options is None:
            problems.append(
                Problem(where, f"no item {link_id!r} in {instrument.id}", "unknown_item")
            )
            continue
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(
                Problem(where, f"must be an integer, not {type(value).__name__}", "type")
            )
            continue
        if value not in options:
            allowed = ", ".join(str(v) for v in options)
            problems.append(Problem(where, f"{value} is not one of {allowed}", "not_an_option"))
            continue
        accepted[link_id] = value
    if problems:
        raise AnswersInvalid(problems)
    return accepted


def _scale_value(
    instrument: Instrument, scale: Scale, answers: Mapping[str, int]
) -> tuple[float | None, int, str | None]:
    """(reported value or None, raw sum over answered items, reason when None)."""
    item_scores: list[int] = []
    for link_id in scale.link_ids:
        answer = answers.get(link_id)
        if answer is None:
            continue
        item_score = instrument.scores[link_id].get(answer)
        if item_score is not None:  # a declined answer counts as missing
            item_scores.append(item_score)
    raw = sum(item_scores)
    missing = len(scale.link_ids) - len(item_scores)
    if missing > scale.missing.max_missing:
        allowed = scale.missing.max_missing
        return (
            None,
            raw,
            (
                f"{missing} of {len(scale.link_ids)} items unanswered; "
                f"the rule allows {allowed}: {scale.missing.rule}"
            ),
        )
    value: float
    if scale.method is Method.LOOKUP_TABLE:
        assert scale.table is not None
        value = scale.table[raw]
    elif scale.method is Method.MEAN:
        value = raw / len(item_scores)
    elif scale.method is Method.TRANSFORM_0_100:
        mean = raw / len(item_scores)
        value = 100 * (mean - scale.item_min) / (scale.item_max - scale.item_min)
    else:  # sum, dichotomous-count
        value = raw
    return round_half_up(value, scale.decimals), raw, None


def round_half_up(value: float, decimals: int) -> float:
    """Rounding as a clinician reads a printed score: 6.25 -> 6.3, not banker's 6.2."""
    quantum = Decimal(1).scaleb(-decimals)
    rounded = Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP)
    return int(rounded) if decimals == 0 else float(rounded)


def _band(scale: Scale, value: float | None) -> BandResult | None:
    if value is None:
        return None
    for interval, band in scale.bands:
        if value in interval:
            return BandResult.of(band)
    return None


def score(instrument: Instrument, answers: Mapping[str, int]) -> Score:
    """Score validated answers (see :func:`validate`)."""
    total, raw, reason = _scale_value(instrument, instrument.total, answers)
    subscales: dict[str, float | None] = {}
    subscale_bands: dict[str, BandResult] = {}
    subscale_reasons: dict[str, str] = {}
    for scale in instrument.subscales:
        value, _, sub_reason = _scale_value(instrument, scale, answers)
        subscales[scale.id] = value
        band = _band(scale, value)
        if band is not None:
            subscale_bands[scale.id] = band
        if sub_reason is not None:
            subscale_reasons[scale.id] = sub_reason
    missing = [
        link_id
        for link_id in instrument.link_ids
        if answers.get(link_id) not in instrument.scores[link_id]
    ]
    errors = instrument.definition.scoring.standard_errors
    return Score(
        instrument=instrument.id,
        total=total,
        raw=raw if total is not None else None,
        subscales=subscales,
        band=_band(instrument.total, total),
        missing=missing,
        total_reason=reason,
        subscale_bands=subscale_bands,
        subscale_reasons=subscale_reasons,
        standard_error=errors[raw] if errors is not None and total is not None else None,
    )
