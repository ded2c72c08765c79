"""The history's trend: better or worse only past the instrument's meaningful change."""

from __future__ import annotations

import pytest

from service.instruments.model import (
    Direction,
    MinimalImportantDifference,
    NoThreshold,
    Provenance,
    ReliableChangeIndex,
)
from service.patients.model import Trend, trend

MID = MinimalImportantDifference(
    value=3.0, source="A published MID", provenance=Provenance.PUBLISHED, note="3 T points"
)
RCI = ReliableChangeIndex(
    value=2.48,
    sd=2.0,
    sd_source="A norm study",
    reliability=0.8,
    reliability_source="A test-retest study",
    provenance=Provenance.PUBLISHED,
    note="1.96 x 2.0 x sqrt(2) x sqrt(1 - 0.8) = 2.48",
)
WORSE_UP = Direction.HIGHER_WORSE
BETTER_UP = Direction.HIGHER_BETTER


@pytest.mark.parametrize(
    ("change", "direction", "expected"),
    [
        (0.0, WORSE_UP, Trend.NO_MEANINGFUL_CHANGE),
        (1.0, WORSE_UP, Trend.NO_MEANINGFUL_CHANGE),
        (2.9, WORSE_UP, Trend.NO_MEANINGFUL_CHANGE),
        (-2.9, BETTER_UP, Trend.NO_MEANINGFUL_CHANGE),
        (3.0, WORSE_UP, Trend.WORSE),
        (-3.0, WORSE_UP, Trend.BETTER),
        (3.0, BETTER_UP, Trend.BETTER),
        (-3.0, BETTER_UP, Trend.WORSE),
        (12.5, WORSE_UP, Trend.WORSE),
    ],
)
def test_a_change_counts_only_from_the_minimal_important_difference(
    change: float, direction: Direction, expected: Trend
) -> None:
    assert trend(change, direction, MID) is expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [(2.0, Trend.NO_MEANINGFUL_CHANGE), (-2.0, Trend.NO_MEANINGFUL_CHANGE), (3.0, Trend.WORSE)],
)
def test_a_change_counts_only_beyond_the_reliable_change_index(
    change: float, expected: Trend
) -> None:
    assert trend(change, WORSE_UP, RCI) is expected


def test_without_a_threshold_no_change_is_called_better_or_worse() -> None:
    none = NoThreshold(reason="No MID published; no reliability to compute an RCI from.")
    assert [trend(c, WORSE_UP, none) for c in (-6.0, 0.0, 1.0, 6.0)] == [None] * 4


def test_the_first_screening_has_no_trend() -> None:
    assert trend(None, WORSE_UP, MID) is None


def test_trend_values_are_the_published_words() -> None:
    assert [t.value for t in Trend] == ["better", "worse", "no meaningful change"]
