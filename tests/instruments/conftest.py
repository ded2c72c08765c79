"""Published facts of every instrument, written from /work/shared/reference/instruments.md.

Nothing here is read back from ``schemas/instruments``: item ids, answer values, reverse
keys, ranges and cut-offs are copied from the reference (section 14 where it is newer), so
a definition that disagrees with the reference fails a test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple

import pytest

from service.instruments.loader import load_catalog
from service.instruments.model import Instrument
from service.instruments.scoring import Score, score, validate

CATALOG_DIR = Path(__file__).resolve().parents[2] / "schemas" / "instruments"

Kind = Literal["sum", "mean", "transform-0-100", "lookup-table", "dichotomous-count"]


class Cut(NamedTuple):
    """A band: every reported value up to ``upper`` (included or not) not in an earlier band."""

    code: str
    positive: bool
    upper: float
    inclusive: bool


def at_most(upper: float, code: str, positive: bool) -> Cut:
    return Cut(code, positive, upper, inclusive=True)


def below(upper: float, code: str, positive: bool) -> Cut:
    return Cut(code, positive, upper, inclusive=False)


def rest(code: str, positive: bool) -> Cut:
    return Cut(code, positive, math.inf, inclusive=True)


def published_band(cuts: Iterable[Cut], value: float) -> Cut:
    for cut in cuts:
        if value < cut.upper or (cut.inclusive and value == cut.upper):
            return cut
    raise AssertionError(f"{value} is in no published band")


@dataclass(frozen=True)
class Sub:
    items: tuple[str, ...]
    low: float
    high: float
    bands: tuple[Cut, ...] = ()


@dataclass(frozen=True)
class Published:
    kind: Kind
    items: tuple[str, ...]
    values: tuple[int, ...]
    """Answer values of every item, as published (or Belong's ordinal encoding of labels)."""
    low: float
    high: float
    """Published range of the reported total."""
    decimals: int = 0
    reverse: frozenset[str] = frozenset()
    negative: frozenset[str] = frozenset()
    """Dichotomous scales: the negatively worded items (the others are positively worded)."""
    item_values: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    labels: Mapping[int, str] = field(default_factory=dict)
    declined: int | None = None
    bands: tuple[Cut, ...] = ()
    subscales: Mapping[str, Sub] = field(default_factory=dict)

    def values_of(self, link_id: str) -> tuple[int, ...]:
        return self.item_values.get(link_id, self.values)


def numbered(count: int, first: int = 1) -> tuple[str, ...]:
    return tuple(str(n) for n in range(first, first + count))


FREQUENCY_4 = {1: "Never", 2: "Rarely", 3: "Sometimes", 4: "Always"}  # PhenX / LOINC LL1627-0
PROMIS_LABELS = {1: "Never", 2: "Rarely", 3: "Sometimes", 4: "Usually", 5: "Always"}
DJG_LABELS = {1: "yes!", 2: "yes", 3: "more or less", 4: "no", 5: "no!"}
LONELY_ON_NEGATIVE = frozenset({"yes!", "yes", "more or less"})
LONELY_ON_POSITIVE = frozenset({"more or less", "no", "no!"})

SOCIAL_ISOLATION_BANDS = (  # HealthMeasures generic guidance, negative domains
    below(55, "within-normal-limits", False),
    below(60, "mild", True),
    below(70, "moderate", True),
    rest("severe", True),
)
SUPPORT_BANDS = (  # HealthMeasures generic guidance, function/support domains
    below(30, "severe", True),
    below(40, "moderate", True),
    below(45, "mild", True),
    rest("within-normal-limits", False),
)
DJG6_SUBSCALE_BANDS = (at_most(0, "not-lonely", False), rest("lonely", True))
LSNS_SUBSCALE_BANDS = (below(6, "low", True), rest("adequate", False))


def promis(items: str, low: float, high: float, bands: tuple[Cut, ...]) -> Published:
    return Published(
        kind="lookup-table",
        items=tuple(items.split()),
        values=(1, 2, 3, 4, 5),
        low=low,
        high=high,
        decimals=1,
        labels=PROMIS_LABELS,
        bands=bands,
    )


PROMIS_SI_4 = "UCLA11x2 UCLA13x3 UCLA14x2 UCLA18x2"
PROMIS_ES_4 = "FSE31053x2 FSE31059x2 SS12x SSQ3x2"
PROMIS_IS_4 = "CCC31052x CCC31055x CCC31065x SS6"
PROMIS_COMP_4 = "FSE31057x2 FSE31061x2 FSE31068x UCLA15x2"

PUBLISHED: dict[str, Published] = {
    # 1. Hughes 2004: 1 Hardly ever / 2 Some of the time / 3 Often, summed 3-9.
    "ucla-3": Published(
        kind="sum",
        items=numbered(3),
        values=(1, 2, 3),
        low=3,
        high=9,
        labels={1: "Hardly ever", 2: "Some of the time", 3: "Often"},
        bands=(at_most(5, "not-lonely", False), rest("lonely", True)),
    ),
    # 2. Russell 1996: 1-4, items 1, 5, 6, 9, 10, 15, 16, 19, 20 score 5 - response; 20-80.
    "ucla-20": Published(
        kind="sum",
        items=numbered(20),
        values=(1, 2, 3, 4),
        low=20,
        high=80,
        reverse=frozenset({"1", "5", "6", "9", "10", "15", "16", "19", "20"}),
        labels=FREQUENCY_4,
    ),
    # 3. De Jong Gierveld 6-item, manual numbering; 0-6, subscales 0-3.
    "djg-6": Published(
        kind="dichotomous-count",
        items=("3", "4", "7", "8", "9", "10"),
        values=(1, 2, 3, 4, 5),
        low=0,
        high=6,
        negative=frozenset({"3", "9", "10"}),
        labels=DJG_LABELS,
        bands=(
            at_most(1, "not-lonely", False),
            at_most(4, "moderate", True),
            rest("severe", True),
        ),
        subscales={
            "emotional": Sub(("3", "9", "10"), 0, 3, DJG6_SUBSCALE_BANDS),
            "social": Sub(("4", "7", "8"), 0, 3, DJG6_SUBSCALE_BANDS),
        },
    ),
    # 3. De Jong Gierveld 11-item: negative 2, 3, 5, 6, 9, 10; positive 1, 4, 7, 8, 11; 0-11.
    "djg-11": Published(
        kind="dichotomous-count",
        items=numbered(11),
        values=(1, 2, 3, 4, 5),
        low=0,
        high=11,
        negative=frozenset({"2", "3", "5", "6", "9", "10"}),
        labels=DJG_LABELS,
        bands=(
            at_most(2, "not-lonely", False),
            at_most(8, "moderate", True),
            at_most(10, "severe", True),
            rest("very-severe", True),
        ),
        subscales={
            "emotional": Sub(("2", "3", "5", "6", "9", "10"), 0, 6),
            "social": Sub(("1", "4", "7", "8", "11"), 0, 5),
        },
    ),
    # 4. Lubben 2006: six count items 0-5, sum 0-30, < 12 at risk; subscales 0-15, < 6.
    "lsns-6": Published(
        kind="sum",
        items=numbered(6),
        values=(0, 1, 2, 3, 4, 5),
        low=0,
        high=30,
        bands=(below(12, "at-risk", True), rest("not-at-risk", False)),
        subscales={
            "family": Sub(("1", "2", "3"), 0, 15, LSNS_SUBSCALE_BANDS),
            "friends": Sub(("4", "5", "6"), 0, 15, LSNS_SUBSCALE_BANDS),
        },
    ),
    # 5. Kocalevent 2018: item 1 1-4, items 2-3 1-5, sum 3-14; 3-8 / 9-11 / 12-14.
    "osss-3": Published(
        kind="sum",
        items=numbered(3),
        values=(1, 2, 3, 4, 5),
        low=3,
        high=14,
        item_values={"1": (1, 2, 3, 4)},
        bands=(
            at_most(8, "poor", True),
            at_most(11, "moderate", False),
            rest("strong", False),
        ),
    ),
    # 6. Zimet 1988: 1-7, means; < 3.00 low, 3.00-5.00 moderate, > 5.00 high.
    "mspss": Published(
        kind="mean",
        items=numbered(12),
        values=(1, 2, 3, 4, 5, 6, 7),
        low=1,
        high=7,
        decimals=2,
        labels={
            1: "Very Strongly Disagree",
            2: "Strongly Disagree",
            3: "Mildly Disagree",
            4: "Neutral",
            5: "Mildly Agree",
            6: "Strongly Agree",
            7: "Very Strongly Agree",
        },
        bands=(
            below(3, "low-support", True),
            at_most(5, "moderate-support", False),
            rest("high-support", False),
        ),
        subscales={
            "significant-other": Sub(("1", "2", "5", "10"), 1, 7),
            "family": Sub(("3", "4", "8", "11"), 1, 7),
            "friends": Sub(("6", "7", "9", "12"), 1, 7),
        },
    ),
    # 7. Sherbourne & Stewart 1991 / RAND: functional items 2-20 scored 1-5, 0-100, no bands.
    "mos-sss": Published(
        kind="transform-0-100",
        items=numbered(19, first=2),
        values=(1, 2, 3, 4, 5),
        low=0,
        high=100,
        decimals=1,
        subscales={
            "emotional-informational": Sub(("3", "4", "8", "9", "13", "16", "17", "19"), 0, 100),
            "tangible": Sub(("2", "5", "12", "15"), 0, 100),
            "affectionate": Sub(("6", "10", "20"), 0, 100),
            "positive-social-interaction": Sub(("7", "11", "18"), 0, 100),
        },
    ),
    # 7. Moser 2012 (MOS item numbers): instrumental 2, 5, 12, 15; emotional 7, 17, 19, 20.
    "mmos-ss": Published(
        kind="transform-0-100",
        items=("2", "5", "7", "12", "15", "17", "19", "20"),
        values=(1, 2, 3, 4, 5),
        low=0,
        high=100,
        decimals=1,
        subscales={
            "instrumental": Sub(("2", "5", "12", "15"), 0, 100),
            "emotional": Sub(("7", "17", "19", "20"), 0, 100),
        },
    ),
    # 11. Krebs 2009: three 0-10 ratings, mean 0-10, no official bands.
    "peg": Published(
        kind="mean",
        items=("P", "E", "G"),
        values=tuple(range(11)),
        low=0,
        high=10,
        decimals=1,
    ),
    # 9. AHC HRSN 93159-2: Never..Always; "Often" / "Always" positive.
    "ahc-isolation": Published(
        kind="sum",
        items=("1",),
        values=(1, 2, 3, 4, 5),
        low=1,
        high=5,
        labels={1: "Never", 2: "Rarely", 3: "Sometimes", 4: "Often", 5: "Always"},
        bands=(at_most(3, "screen-negative", False), rest("screen-positive", True)),
    ),
    # 9 / 14.4. PRAPARE 93029-7: four frequencies, "Less than once a week" flagged; refusal.
    "prapare-social-contact": Published(
        kind="sum",
        items=("1",),
        values=(1, 2, 3, 4),
        low=1,
        high=4,
        declined=0,
        labels={
            0: "I choose not to answer this question",
            1: "Less than once a week",
            2: "1 or 2 times a week",
            3: "3 to 5 times a week",
            4: "5 or more times a week",
        },
        bands=(at_most(1, "less-than-weekly", True), rest("weekly-or-more", False)),
    ),
    # 8 / 14.2. PROMIS SF v2.0: items as in CHOIR, 1-5, T range = first / last table row.
    "promis-si-4a": promis(PROMIS_SI_4, 34.8, 74.2, SOCIAL_ISOLATION_BANDS),
    "promis-si-6a": promis(
        f"Iso-CaPS1 Iso-CaPS2 {PROMIS_SI_4}", 34.4, 76.2, SOCIAL_ISOLATION_BANDS
    ),
    "promis-si-8a": promis(
        f"Iso-CaPS1 Iso-CaPS2 Iso-CaPS3 Iso-CaPS9 {PROMIS_SI_4}", 33.9, 76.9, SOCIAL_ISOLATION_BANDS
    ),
    "promis-es-4a": promis(PROMIS_ES_4, 25.7, 62.0, SUPPORT_BANDS),
    "promis-es-6a": promis(
        "FSE31053x2 FSE31059x2 FSE31069x2 SS12x SSE-CaPS6 SSQ3x2", 25.0, 63.2, SUPPORT_BANDS
    ),
    "promis-es-8a": promis(
        "FSE31053x2 FSE31059x2 FSE31066x2 FSE31069x2 SS12x SSE-CaPS6 SSQ3x2 SSQ4x2",
        24.7,
        63.6,
        SUPPORT_BANDS,
    ),
    "promis-is-4a": promis(PROMIS_IS_4, 29.3, 63.3, SUPPORT_BANDS),
    "promis-is-6a": promis(
        "CCC31052x CCC31055x CCC31062x CCC31065x SS6 SS9", 28.7, 64.9, SUPPORT_BANDS
    ),
    "promis-is-8a": promis(
        "CCC31051x3 CCC31052x CCC31055x CCC31062x CCC31065x INS-CaPS2 SS6 SS9",
        27.0,
        65.6,
        SUPPORT_BANDS,
    ),
    "promis-comp-4a": promis(PROMIS_COMP_4, 25.2, 63.1, SUPPORT_BANDS),
    "promis-comp-6a": promis(
        "FSE31057x2 FSE31061x2 FSE31068x SSC-CaPS1 SSC-CaPS10 UCLA15x2", 24.2, 64.2, SUPPORT_BANDS
    ),
}
INSTRUMENT_IDS = tuple(PUBLISHED)


def item_score(facts: Published, link_id: str, value: int) -> int:
    """What one answer counts for under the published rule."""
    if facts.kind == "dichotomous-count":
        lonely = LONELY_ON_NEGATIVE if link_id in facts.negative else LONELY_ON_POSITIVE
        return int(facts.labels[value] in lonely)
    values = facts.values_of(link_id)
    return min(values) + max(values) - value if link_id in facts.reverse else value


def extreme_answers(facts: Published, *, highest: bool) -> dict[str, int]:
    """Every item at its lowest- (or highest-) scoring answer."""
    pick = max if highest else min
    return {
        link: pick(facts.values_of(link), key=partial(item_score, facts, link))
        for link in facts.items
    }


def answers_with_raw(
    facts: Published, raw: int, items: tuple[str, ...] | None = None
) -> dict[str, int]:
    """A complete answer set whose item scores over ``items`` (all items) sum to ``raw``.

    Items outside ``items`` stay at their lowest-scoring answer.
    """
    answers = extreme_answers(facts, highest=False)
    chosen = facts.items if items is None else items
    remaining = raw - sum(item_score(facts, link, answers[link]) for link in chosen)
    for link in chosen:
        current = item_score(facts, link, answers[link])
        fitting = [
            v for v in facts.values_of(link) if item_score(facts, link, v) - current <= remaining
        ]
        answers[link] = max(fitting, key=partial(item_score, facts, link))
        remaining -= item_score(facts, link, answers[link]) - current
    if remaining:
        raise ValueError(f"raw score {raw} cannot be reached")
    return answers


def score_answers(instrument: Instrument, answers: Mapping[str, int | None]) -> Score:
    """Validate then score, as the service does; ``None`` leaves an item unanswered."""
    return score(instrument, validate(instrument, answers.items()))


@pytest.fixture(scope="module")
def catalog() -> dict[str, Instrument]:
    return load_catalog(CATALOG_DIR)
