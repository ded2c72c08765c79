"""Scoring against the facts the instruments' authors publish.

Expected values are written from /work/shared/reference/instruments.md (section 14 where
it is newer), never read back from the definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations

import msgspec
import pytest

from service.instruments.model import Instrument
from service.instruments.scoring import AnswersInvalid, Score, validate
from tests.instruments.conftest import (
    INSTRUMENT_IDS,
    PUBLISHED,
    Published,
    answers_with_raw,
    extreme_answers,
    published_band,
    score_answers,
)

# Section 14.2 computed raw -> T tables, lowest raw score first.
PROMIS_TABLES: dict[str, tuple[float, ...]] = {
    "promis-si-4a": (
        34.8, 40.4, 43.3, 45.7, 47.8, 49.8, 51.8, 53.9, 56.1, 58.1, 60.1, 62.0, 63.8, 65.5,
        67.5, 69.9, 74.2,
    ),
    "promis-si-6a": (
        34.4, 39.7, 42.2, 44.2, 45.8, 47.3, 48.7, 50.1, 51.5, 53.0, 54.4, 55.9, 57.3, 58.8,
        60.2, 61.5, 62.8, 64.0, 65.2, 66.5, 67.7, 69.1, 70.8, 72.6, 76.2,
    ),
    "promis-si-8a": (
        33.9, 39.1, 41.4, 43.1, 44.4, 45.7, 46.8, 47.9, 48.9, 50.0, 51.0, 52.0, 53.1, 54.2,
        55.3, 56.4, 57.5, 58.6, 59.6, 60.7, 61.7, 62.6, 63.6, 64.5, 65.4, 66.3, 67.2, 68.2,
        69.2, 70.4, 71.8, 73.4, 76.9,
    ),
    "promis-es-4a": (
        25.7, 29.9, 32.1, 34.0, 35.7, 37.3, 38.9, 40.5, 42.1, 43.7, 45.4, 47.2, 49.0, 50.8,
        53.0, 55.6, 62.0,
    ),
    "promis-es-6a": (
        25.0, 28.9, 30.7, 32.2, 33.5, 34.6, 35.7, 36.8, 37.8, 38.9, 40.0, 41.1, 42.2, 43.3,
        44.4, 45.5, 46.7, 48.0, 49.2, 50.5, 51.8, 53.3, 54.9, 57.2, 63.2,
    ),
    "promis-es-8a": (
        24.7, 28.4, 30.1, 31.4, 32.5, 33.5, 34.3, 35.2, 36.0, 36.8, 37.6, 38.4, 39.2, 39.9,
        40.7, 41.5, 42.3, 43.1, 43.9, 44.7, 45.6, 46.4, 47.3, 48.2, 49.2, 50.1, 51.1, 52.1,
        53.1, 54.3, 55.7, 57.8, 63.6,
    ),
    "promis-is-4a": (
        29.3, 33.9, 35.9, 37.6, 39.1, 40.5, 41.8, 43.1, 44.5, 45.9, 47.3, 48.9, 50.5, 52.3,
        54.4, 57.1, 63.3,
    ),
    "promis-is-6a": (
        28.7, 33.1, 34.9, 36.3, 37.6, 38.6, 39.7, 40.6, 41.6, 42.5, 43.4, 44.3, 45.2, 46.2,
        47.2, 48.2, 49.2, 50.3, 51.4, 52.6, 53.9, 55.3, 57.1, 59.5, 64.9,
    ),
    "promis-is-8a": (
        27.0, 31.1, 33.0, 34.4, 35.6, 36.6, 37.5, 38.3, 39.1, 39.9, 40.7, 41.4, 42.1, 42.8,
        43.5, 44.3, 45.0, 45.7, 46.5, 47.2, 48.0, 48.8, 49.6, 50.5, 51.4, 52.3, 53.2, 54.3,
        55.4, 56.7, 58.2, 60.4, 65.6,
    ),
    "promis-comp-4a": (
        25.2, 29.5, 31.8, 33.8, 35.5, 37.3, 39.1, 40.8, 42.5, 44.3, 46.1, 48.1, 50.0, 52.1,
        54.3, 56.9, 63.1,
    ),
    "promis-comp-6a": (
        24.2, 28.0, 30.1, 31.7, 33.1, 34.4, 35.7, 36.9, 38.1, 39.3, 40.5, 41.6, 42.7, 43.9,
        45.1, 46.3, 47.6, 48.8, 50.1, 51.4, 52.9, 54.6, 56.4, 58.7, 64.2,
    ),
}  # fmt: skip
PROMIS_ISOLATION = ("promis-si-4a", "promis-si-6a", "promis-si-8a")
# (T boundary, band of the row below it, band of the row at or above it)
ISOLATION_BOUNDARIES = (
    (55, "within-normal-limits", "mild"),
    (60, "mild", "moderate"),
    (70, "moderate", "severe"),
)
SUPPORT_BOUNDARIES = (
    (30, "severe", "moderate"),
    (40, "moderate", "mild"),
    (45, "mild", "within-normal-limits"),
)
UNBANDED = ("ucla-20", "mos-sss", "mmos-ss", "peg")

ITEM_CASES = [(i, link) for i in INSTRUMENT_IDS for link in PUBLISHED[i].items]
SUBSCALE_CASES = [(i, sub) for i in INSTRUMENT_IDS for sub in PUBLISHED[i].subscales]
DJG = ("djg-6", "djg-11")
DJG6 = PUBLISHED["djg-6"]


def band_code(result: Score) -> str | None:
    return result.band.code if result.band else None


def from_labels(facts: Published, labels: Mapping[str, str]) -> dict[str, int]:
    """Answers given by label, item by item."""
    value_of = {label: value for value, label in facts.labels.items()}
    return {link: value_of[label] for link, label in labels.items()}


# ---------------------------------------------------------------- items, options, ranges


def test_catalog_holds_every_instrument(catalog: dict[str, Instrument]) -> None:
    assert sorted(catalog) == sorted(INSTRUMENT_IDS)


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_items_and_answer_options(catalog: dict[str, Instrument], instrument_id: str) -> None:
    instrument, facts = catalog[instrument_id], PUBLISHED[instrument_id]
    assert instrument.link_ids == facts.items
    for link in facts.items:
        options = instrument.options[link]
        counted = sorted(value for value, option in options.items() if not option.declined)
        declined = [value for value, option in options.items() if option.declined]
        assert counted == list(facts.values_of(link)), link
        assert declined == ([] if facts.declined is None else [facts.declined]), link
        if facts.labels:
            assert {value: option.display for value, option in options.items()} == facts.labels


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_lowest_and_highest_answers_give_the_published_range(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    instrument, facts = catalog[instrument_id], PUBLISHED[instrument_id]
    lowest = score_answers(instrument, extreme_answers(facts, highest=False))
    highest = score_answers(instrument, extreme_answers(facts, highest=True))
    assert (lowest.total, highest.total) == (facts.low, facts.high)
    assert instrument.score_range() == (facts.low, facts.high)
    for sub_id, sub in facts.subscales.items():
        assert (lowest.subscales[sub_id], highest.subscales[sub_id]) == (sub.low, sub.high)


@pytest.mark.parametrize(("instrument_id", "subscale_id"), SUBSCALE_CASES)
def test_subscale_holds_its_published_items(
    catalog: dict[str, Instrument], instrument_id: str, subscale_id: str
) -> None:
    facts = PUBLISHED[instrument_id]
    answers = extreme_answers(facts, highest=False)
    top = extreme_answers(facts, highest=True)
    answers.update({link: top[link] for link in facts.subscales[subscale_id].items})
    result = score_answers(catalog[instrument_id], answers)
    assert result.subscales == {
        sub_id: sub.high if sub_id == subscale_id else sub.low
        for sub_id, sub in facts.subscales.items()
    }


def expected_shift(facts: Published, link_id: str) -> int:
    """Raw change when one item moves from its lowest to its highest answer value."""
    if facts.kind == "dichotomous-count":  # yes! -> no!: lonely on negative, not on positive
        return -1 if link_id in facts.negative else 1
    values = facts.values_of(link_id)
    spread = max(values) - min(values)
    return -spread if link_id in facts.reverse else spread


@pytest.mark.parametrize(("instrument_id", "link_id"), ITEM_CASES)
def test_item_keying(catalog: dict[str, Instrument], instrument_id: str, link_id: str) -> None:
    facts = PUBLISHED[instrument_id]
    values = facts.values_of(link_id)
    answers = extreme_answers(facts, highest=False)
    low = score_answers(catalog[instrument_id], answers | {link_id: min(values)})
    high = score_answers(catalog[instrument_id], answers | {link_id: max(values)})
    assert low.raw is not None and high.raw is not None
    assert high.raw - low.raw == expected_shift(facts, link_id)
    moved = {sub for sub in facts.subscales if low.subscales[sub] != high.subscales[sub]}
    assert moved == {sub_id for sub_id, sub in facts.subscales.items() if link_id in sub.items}


@pytest.mark.parametrize(
    ("instrument_id", "link_id"), [case for case in ITEM_CASES if case[0] in DJG]
)
@pytest.mark.parametrize("label", ["yes!", "yes", "more or less", "no", "no!"])
def test_djg_answer_counts_as_the_manual_says(
    catalog: dict[str, Instrument], instrument_id: str, link_id: str, label: str
) -> None:
    facts = PUBLISHED[instrument_id]
    if link_id in facts.negative:  # lonely on yes!, yes and more or less
        lonely = label in ("yes!", "yes", "more or less")
    else:  # positively worded: lonely on more or less, no and no!
        lonely = label in ("more or less", "no", "no!")
    answers = extreme_answers(facts, highest=False) | from_labels(facts, {link_id: label})
    assert score_answers(catalog[instrument_id], answers).total == int(lonely)


# ---------------------------------------------------------------- bands

# (instrument, raw score, reported total, band), both sides of every published boundary.
BAND_BOUNDARIES: list[tuple[str, int, float, str]] = [
    ("ucla-3", 5, 5, "not-lonely"),
    ("ucla-3", 6, 6, "lonely"),
    ("djg-6", 1, 1, "not-lonely"),
    ("djg-6", 2, 2, "moderate"),
    ("djg-6", 4, 4, "moderate"),
    ("djg-6", 5, 5, "severe"),
    ("djg-11", 2, 2, "not-lonely"),
    ("djg-11", 3, 3, "moderate"),
    ("djg-11", 8, 8, "moderate"),
    ("djg-11", 9, 9, "severe"),
    ("djg-11", 10, 10, "severe"),
    ("djg-11", 11, 11, "very-severe"),
    ("lsns-6", 11, 11, "at-risk"),
    ("lsns-6", 12, 12, "not-at-risk"),
    ("osss-3", 8, 8, "poor"),
    ("osss-3", 9, 9, "moderate"),
    ("osss-3", 11, 11, "moderate"),
    ("osss-3", 12, 12, "strong"),
    ("mspss", 35, 2.92, "low-support"),  # 35 / 12
    ("mspss", 36, 3.0, "moderate-support"),
    ("mspss", 60, 5.0, "moderate-support"),
    ("mspss", 61, 5.08, "high-support"),  # 61 / 12
    ("ahc-isolation", 3, 3, "screen-negative"),
    ("ahc-isolation", 4, 4, "screen-positive"),
    ("prapare-social-contact", 1, 1, "less-than-weekly"),
    ("prapare-social-contact", 2, 2, "weekly-or-more"),
]
SUBSCALE_BOUNDARIES: list[tuple[str, str, int, str]] = [
    ("djg-6", "emotional", 0, "not-lonely"),
    ("djg-6", "emotional", 1, "lonely"),
    ("djg-6", "social", 0, "not-lonely"),
    ("djg-6", "social", 1, "lonely"),
    ("lsns-6", "family", 5, "low"),
    ("lsns-6", "family", 6, "adequate"),
    ("lsns-6", "friends", 5, "low"),
    ("lsns-6", "friends", 6, "adequate"),
]
PROMIS_BOUNDARIES = [
    (form, *boundary)
    for form in PROMIS_TABLES
    for boundary in (ISOLATION_BOUNDARIES if form in PROMIS_ISOLATION else SUPPORT_BOUNDARIES)
]


@pytest.mark.parametrize(("instrument_id", "raw", "total", "code"), BAND_BOUNDARIES)
def test_band_boundary(
    catalog: dict[str, Instrument], instrument_id: str, raw: int, total: float, code: str
) -> None:
    facts = PUBLISHED[instrument_id]
    result = score_answers(catalog[instrument_id], answers_with_raw(facts, raw))
    assert result.band is not None
    assert (result.total, result.band.code) == (total, code)
    assert result.band.positive is published_band(facts.bands, total).positive


@pytest.mark.parametrize(("instrument_id", "subscale_id", "value", "code"), SUBSCALE_BOUNDARIES)
def test_subscale_band_boundary(
    catalog: dict[str, Instrument], instrument_id: str, subscale_id: str, value: int, code: str
) -> None:
    facts = PUBLISHED[instrument_id]
    sub = facts.subscales[subscale_id]
    result = score_answers(catalog[instrument_id], answers_with_raw(facts, value, sub.items))
    assert result.subscales[subscale_id] == value
    band = result.subscale_bands[subscale_id]
    assert band.code == code
    assert band.positive is published_band(sub.bands, value).positive


@pytest.mark.parametrize(("instrument_id", "boundary", "below", "at_or_above"), PROMIS_BOUNDARIES)
def test_promis_band_boundary(
    catalog: dict[str, Instrument],
    instrument_id: str,
    boundary: float,
    below: str,
    at_or_above: str,
) -> None:
    facts, table = PUBLISHED[instrument_id], PROMIS_TABLES[instrument_id]
    rows = {len(facts.items) + offset: t for offset, t in enumerate(table)}
    raw_below = max(raw for raw, t in rows.items() if t < boundary)
    raw_above = min(raw for raw, t in rows.items() if t >= boundary)
    assert raw_above == raw_below + 1
    for raw, code in ((raw_below, below), (raw_above, at_or_above)):
        result = score_answers(catalog[instrument_id], answers_with_raw(facts, raw))
        assert (result.total, band_code(result)) == (rows[raw], code)


@pytest.mark.parametrize("instrument_id", UNBANDED)
def test_instruments_without_published_bands_give_no_band(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    facts = PUBLISHED[instrument_id]
    for highest in (False, True):
        result = score_answers(catalog[instrument_id], extreme_answers(facts, highest=highest))
        assert result.band is None
        assert result.subscale_bands == {}


# ---------------------------------------------------------------- missing items


@pytest.mark.parametrize(
    ("instrument_id", "link_id"), [case for case in ITEM_CASES if case[0] != "djg-6"]
)
def test_one_missing_item_withholds_the_total(
    catalog: dict[str, Instrument], instrument_id: str, link_id: str
) -> None:
    answers = extreme_answers(PUBLISHED[instrument_id], highest=True) | {link_id: None}
    result = score_answers(catalog[instrument_id], answers)
    assert result.total is None
    assert result.raw is None
    assert result.band is None
    assert result.standard_error is None
    assert result.total_reason
    assert result.missing == [link_id]


@pytest.mark.parametrize("link_id", DJG6.items)
def test_djg6_total_survives_one_missing_item_unprorated(
    catalog: dict[str, Instrument], link_id: str
) -> None:
    answers = from_labels(DJG6, dict.fromkeys(DJG6.items, "more or less")) | {link_id: None}
    result = score_answers(catalog["djg-6"], answers)
    assert (result.total, result.raw, band_code(result)) == (5, 5, "severe")  # not 6
    assert result.missing == [link_id]
    assert result.total_reason is None
    for sub_id, sub in DJG6.subscales.items():
        if link_id in sub.items:
            assert result.subscales[sub_id] is None
            assert result.subscale_reasons[sub_id]
            assert sub_id not in result.subscale_bands
        else:
            assert result.subscales[sub_id] == 3
            assert result.subscale_bands[sub_id].code == "lonely"


@pytest.mark.parametrize("missing", list(combinations(DJG6.items, 2)))
def test_djg6_two_missing_items_withhold_the_total(
    catalog: dict[str, Instrument], missing: tuple[str, str]
) -> None:
    answers = extreme_answers(DJG6, highest=True) | dict.fromkeys(missing)
    result = score_answers(catalog["djg-6"], answers)
    assert (result.total, result.raw, result.band) == (None, None, None)
    assert result.total_reason
    assert result.missing == list(missing)


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_no_answers_withhold_every_score(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    facts = PUBLISHED[instrument_id]
    result = score_answers(catalog[instrument_id], {})
    assert result.total is None
    assert result.total_reason
    assert result.missing == list(facts.items)
    assert result.subscales == dict.fromkeys(facts.subscales)


def test_prapare_refusal_counts_as_missing(catalog: dict[str, Instrument]) -> None:
    result = score_answers(catalog["prapare-social-contact"], {"1": 0})
    assert (result.total, result.raw, result.band) == (None, None, None)
    assert result.total_reason
    assert result.missing == ["1"]


# ---------------------------------------------------------------- worked examples


@dataclass(frozen=True)
class Vector:
    instrument_id: str
    answers: tuple[int | str, ...]
    """In the published item order; a string is an answer label."""
    total: float
    band: str | None = None
    subscales: Mapping[str, float] = field(default_factory=dict)
    subscale_bands: Mapping[str, str] = field(default_factory=dict)
    standard_error: float | None = None


UCLA20_LEAST_LONELY = (4, 1, 1, 1, 4, 4, 1, 1, 4, 4, 1, 1, 1, 1, 4, 4, 1, 1, 4, 4)
# djg-6 items in order 3, 4, 7, 8, 9, 10: emotional 3, 9, 10; social 4, 7, 8.
DJG6_EMOTIONAL_NO_SOCIAL_YES = ("no", "yes", "yes", "yes", "no", "no")
# mspss items 1-12: significant other 1, 2, 5, 10 = 7; family 3, 4, 8, 11 = 3; friends = 1.
MSPSS_7_3_1 = (7, 7, 3, 3, 7, 1, 1, 3, 1, 7, 3, 1)
# mos-sss items 2-20: emotional/informational 3, 4, 8, 9, 13, 16, 17, 19 = 4, the rest 1.
MOS_EI_4 = (1, 4, 4, 1, 1, 1, 4, 4, 1, 1, 1, 4, 1, 1, 4, 4, 1, 4, 1)
MOS_SUBSCALES = (
    "emotional-informational",
    "tangible",
    "affectionate",
    "positive-social-interaction",
)

VECTORS = [
    # 1. UCLA-3
    Vector("ucla-3", (1, 1, 1), 3, "not-lonely"),
    Vector("ucla-3", (2, 2, 1), 5, "not-lonely"),
    Vector("ucla-3", (2, 2, 2), 6, "lonely"),
    Vector("ucla-3", (3, 3, 3), 9, "lonely"),
    # 2. UCLA-20
    Vector("ucla-20", (1,) * 20, 47),
    Vector("ucla-20", (4,) * 20, 53),
    Vector("ucla-20", (2,) * 20, 49),
    Vector("ucla-20", UCLA20_LEAST_LONELY, 20),
    Vector("ucla-20", tuple(5 - v for v in UCLA20_LEAST_LONELY), 80),
    # 3. De Jong Gierveld
    Vector("djg-6", ("more or less",) * 6, 6, "severe", {"emotional": 3, "social": 3},
           {"emotional": "lonely", "social": "lonely"}),
    Vector("djg-6", ("yes",) * 6, 3, "moderate", {"emotional": 3, "social": 0},
           {"emotional": "lonely", "social": "not-lonely"}),
    Vector("djg-6", ("no",) * 6, 3, "moderate", {"emotional": 0, "social": 3},
           {"emotional": "not-lonely", "social": "lonely"}),
    Vector("djg-6", DJG6_EMOTIONAL_NO_SOCIAL_YES, 0, "not-lonely", {"emotional": 0, "social": 0},
           {"emotional": "not-lonely", "social": "not-lonely"}),
    Vector("djg-11", ("more or less",) * 11, 11, "very-severe", {"emotional": 6, "social": 5}),
    Vector("djg-11", ("yes",) * 11, 6, "moderate", {"emotional": 6, "social": 0}),
    Vector("djg-11", ("no",) * 11, 5, "moderate", {"emotional": 0, "social": 5}),
    # 4. LSNS-6
    Vector("lsns-6", (2,) * 6, 12, "not-at-risk", {"family": 6, "friends": 6}),
    Vector("lsns-6", (2, 2, 2, 2, 2, 1), 11, "at-risk", {"family": 6, "friends": 5}),
    Vector("lsns-6", (1, 2, 2, 2, 2, 2), 11, "at-risk", {"family": 5, "friends": 6},
           {"family": "low", "friends": "adequate"}),
    # 5. OSSS-3
    Vector("osss-3", (1, 1, 1), 3, "poor"),
    Vector("osss-3", (2, 4, 2), 8, "poor"),
    Vector("osss-3", (2, 4, 3), 9, "moderate"),
    Vector("osss-3", (3, 4, 4), 11, "moderate"),
    Vector("osss-3", (4, 4, 4), 12, "strong"),
    Vector("osss-3", (4, 5, 5), 14, "strong"),
    # 6. MSPSS
    Vector("mspss", (5,) * 12, 5.0, "moderate-support"),
    Vector("mspss", (6,) * 12, 6.0, "high-support"),
    Vector("mspss", MSPSS_7_3_1, 3.67, "moderate-support",
           {"significant-other": 7.0, "family": 3.0, "friends": 1.0}),
    # 7. MOS-SSS and mMOS-SS
    Vector("mos-sss", (3,) * 19, 50.0, None, dict.fromkeys(MOS_SUBSCALES, 50.0)),
    Vector("mos-sss", (5,) * 19, 100.0, None, dict.fromkeys(MOS_SUBSCALES, 100.0)),
    Vector("mos-sss", (1,) * 19, 0.0, None, dict.fromkeys(MOS_SUBSCALES, 0.0)),
    # total by RAND's formula: 100 x (43 / 19 - 1) / 4 = 31.6
    Vector("mos-sss", MOS_EI_4, 31.6, None, {"emotional-informational": 75.0, "tangible": 0.0}),
    Vector("mmos-ss", (4,) * 8, 75.0, None, {"instrumental": 75.0, "emotional": 75.0}),
    # 11. PEG
    Vector("peg", (5, 5, 5), 5.0),
    Vector("peg", (8, 6, 7), 7.0),
    Vector("peg", (10, 10, 10), 10.0),
    Vector("peg", (3, 4, 2), 3.0),
    # 8. PROMIS (T and SE from the section 8 tables)
    Vector("promis-si-4a", (1,) * 4, 34.8, "within-normal-limits", standard_error=5.1),
    Vector("promis-si-4a", (3,) * 4, 56.1, "mild", standard_error=2.6),
    Vector("promis-si-4a", (4,) * 4, 63.8, "moderate", standard_error=2.5),
    Vector("promis-si-4a", (5,) * 4, 74.2, "severe", standard_error=4.2),
    Vector("promis-es-4a", (1,) * 4, 25.7, "severe", standard_error=4.0),
    Vector("promis-es-4a", (3,) * 4, 42.1, "mild", standard_error=2.1),
    Vector("promis-es-4a", (4,) * 4, 49.0, "within-normal-limits", standard_error=2.2),
    Vector("promis-es-4a", (5,) * 4, 62.0, "within-normal-limits", standard_error=5.5),
]  # fmt: skip


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v.instrument_id}={v.total}")
def test_worked_example(catalog: dict[str, Instrument], vector: Vector) -> None:
    facts = PUBLISHED[vector.instrument_id]
    answers = {
        link: answer if isinstance(answer, int) else from_labels(facts, {link: answer})[link]
        for link, answer in zip(facts.items, vector.answers, strict=True)
    }
    result = score_answers(catalog[vector.instrument_id], answers)
    assert result.total == vector.total
    assert band_code(result) == vector.band
    assert {sub: result.subscales[sub] for sub in vector.subscales} == vector.subscales
    assert {
        sub: result.subscale_bands[sub].code for sub in vector.subscale_bands
    } == vector.subscale_bands
    if vector.standard_error is not None:
        assert result.standard_error == vector.standard_error


@pytest.mark.parametrize("instrument_id", list(PROMIS_TABLES))
def test_promis_raw_to_t_table(catalog: dict[str, Instrument], instrument_id: str) -> None:
    facts, table = PUBLISHED[instrument_id], PROMIS_TABLES[instrument_id]
    first = len(facts.items)
    assert len(table) == 4 * first + 1
    scored = []
    for raw in range(first, 5 * first + 1):
        result = score_answers(catalog[instrument_id], answers_with_raw(facts, raw))
        assert result.raw == raw
        assert result.standard_error is not None
        scored.append(result.total)
    assert scored == list(table)


@pytest.mark.parametrize("instrument_id", list(PROMIS_TABLES))
def test_promis_forms_need_written_permission(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    instrument = catalog[instrument_id]
    assert not instrument.enabled([])
    assert instrument.enabled(["promis"])


# ---------------------------------------------------------------- validation


def problems_of(instrument: Instrument, pairs: list[tuple[str, object]]) -> set[tuple[str, str]]:
    """(field, code) of every problem ``validate`` reports, each reported once."""
    with pytest.raises(AnswersInvalid) as caught:
        validate(instrument, pairs)  # type: ignore[arg-type]
    problems = caught.value.problems
    found = {(problem.field, problem.code) for problem in problems}
    assert len(found) == len(problems)
    return found


WRONG_TYPES: list[object] = [True, 1.0, "1"]


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_validation_reports_every_problem_together(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    facts = PUBLISHED[instrument_id]
    first = facts.items[0]
    bad = list(zip(facts.items, [99, *WRONG_TYPES], strict=False))
    pairs = [*bad, (first, min(facts.values_of(first))), ("no-such-item", 1)]
    expected = {
        (f"answers.{link}", "not_an_option" if value == 99 else "type") for link, value in bad
    }
    expected |= {(f"answers.{first}", "duplicate"), ("answers.no-such-item", "unknown_item")}
    assert problems_of(catalog[instrument_id], pairs) == expected


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
def test_validation_rejects_a_value_of_the_wrong_type(
    catalog: dict[str, Instrument], instrument_id: str, value: object
) -> None:
    facts = PUBLISHED[instrument_id]
    pairs: list[tuple[str, object]] = [*extreme_answers(facts, highest=False).items()]
    pairs[-1] = (facts.items[-1], value)
    assert problems_of(catalog[instrument_id], pairs) == {(f"answers.{facts.items[-1]}", "type")}


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_validation_rejects_values_outside_the_published_options(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    facts = PUBLISHED[instrument_id]
    for outside in (max, min):
        step = 1 if outside is max else -1
        pairs: list[tuple[str, object]] = [
            (link, outside(facts.values_of(link)) + step) for link in facts.items
        ]
        pairs = [(link, value) for link, value in pairs if value != facts.declined]
        expected = {(f"answers.{link}", "not_an_option") for link, _ in pairs}
        if pairs:
            assert problems_of(catalog[instrument_id], pairs) == expected


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_validation_accepts_published_values_and_unanswered_items(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    facts = PUBLISHED[instrument_id]
    answers = extreme_answers(facts, highest=True)
    skipped = facts.items[0]
    pairs = [(link, None if link == skipped else value) for link, value in answers.items()]
    expected = {link: value for link, value in answers.items() if link != skipped}
    assert validate(catalog[instrument_id], pairs) == expected


# ---------------------------------------------------------------- wording as published

# Section 4 (LSNS-R items 1, 3, 4) and the 2026-12-01 errata (friends items, preambles).
LSNS6_WORDING = {
    "1": "How many relatives do you see or hear from at least once a month?",
    "2": "How many relatives do you feel at ease with that you can talk about private matters?",
    "3": "How many relatives do you feel close to such that you could call on them for help?",
    "4": "How many of your friends do you see or hear from at least once a month?",
    "5": "How many friends do you feel at ease with that you can talk about private matters?",
    "6": "How many friends do you feel close to such that you could call on them for help?",
}
LSNS6_FAMILY = (
    "FAMILY",
    "Considering the people to whom you are related by birth, marriage, adoption, etc…",
)
LSNS6_FRIENDSHIPS = (
    "FRIENDSHIPS",
    "Considering all of your friends including those who live in your neighborhood…",
)
# Errata 2026-12-01: the official 93029-7 text ends with its example clause.
PRAPARE_WORDING = (
    "How often do you see or talk to people that you care about and feel close to (For "
    "example: talking to friends on the phone, visiting friends or family, going to church "
    "or club meetings)?"
)


def test_lsns6_items_read_as_published(catalog: dict[str, Instrument]) -> None:
    definition = catalog["lsns-6"].definition
    assert {item.linkId: item.text for item in definition.items} == LSNS6_WORDING


def test_lsns6_blocks_open_with_the_preamble_that_says_who_counts(
    catalog: dict[str, Instrument],
) -> None:
    definition = catalog["lsns-6"].definition
    shown = {}
    for item in definition.items:
        assert item.preamble is not None, item.linkId
        preamble = definition.preambles[item.preamble]
        shown[item.linkId] = (preamble.title, preamble.text)
    assert shown == {
        **{link: LSNS6_FAMILY for link in ("1", "2", "3")},
        **{link: LSNS6_FRIENDSHIPS for link in ("4", "5", "6")},
    }


def test_prapare_item_keeps_its_example_clause(catalog: dict[str, Instrument]) -> None:
    (item,) = catalog["prapare-social-contact"].definition.items
    assert item.text == PRAPARE_WORDING
    assert item.wording_source and "PRAPARE" in item.wording_source


def test_mspss_item_2_follows_zimets_own_sheet_and_says_so(
    catalog: dict[str, Instrument],
) -> None:
    # Errata: Zimet's own sheet reads "share joys and sorrows" (most copies add "my"); the
    # 1988 paper could not be read, which the recorded source must say.
    item = catalog["mspss"].definition.items[1]
    assert item.linkId == "2"
    assert item.text == "There is a special person with whom I can share joys and sorrows."
    assert item.wording_source is not None
    assert "Zimet" in item.wording_source and "1988" in item.wording_source


# ---------------------------------------------------------------- PROMIS codes and bands

# Errata 2026-12-01: 77849-8 / 77850-6 are PCO IG "target measure score codes", not panels.
PROMIS_SCORE_CODES = {"promis-si-8a": "77849-8", "promis-is-8a": "77850-6"}


@pytest.mark.parametrize("instrument_id", list(PROMIS_TABLES))
def test_promis_forms_have_no_panel_and_only_the_pco_score_codes(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    definition = catalog[instrument_id].definition
    assert definition.panel is None
    code = definition.scoring.code
    assert (code.code if code else None) == PROMIS_SCORE_CODES.get(instrument_id)


@pytest.mark.parametrize("instrument_id", list(PROMIS_TABLES))
def test_promis_bands_name_their_healthmeasures_scheme_and_stay_conventional(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    bands = catalog[instrument_id].definition.bands
    assert bands
    for band in bands:
        assert band.provenance.value == "conventional", band.code
        assert "mild/moderate/severe scheme" in band.source, band.code
        assert '"very low" to "very high"' in band.source, band.code


# ---------------------------------------------------------------- meaningful change

# Errata 2026-12-01: PROMIS publishes MIDs of roughly 2-6 T points, about 3 for group
# comparisons (not specific to the social domains: conventional). For every other
# instrument no MID was found and the reference gives no reliability coefficient, so no
# reliable change index can be computed from it: no threshold, with the reason.
PROMIS_MID = 3.0


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_meaningful_change_threshold_and_its_source(
    catalog: dict[str, Instrument], instrument_id: str
) -> None:
    change = msgspec.to_builtins(catalog[instrument_id].definition.meaningful_change)
    if instrument_id.startswith("promis-"):
        assert change["kind"] == "mid"
        assert change["value"] == PROMIS_MID
        assert change["provenance"] == "conventional"
        assert "2-6" in change["note"] and change["source"].strip()
    else:
        assert change["kind"] == "none"
        assert "reliab" in change["reason"]
