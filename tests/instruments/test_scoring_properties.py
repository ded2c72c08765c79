"""Properties of scoring that hold for every valid answer set of every instrument."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.instruments.model import Instrument, Scale
from service.instruments.scoring import Score, validate
from tests.instruments.conftest import (
    INSTRUMENT_IDS,
    PUBLISHED,
    Published,
    item_score,
    published_band,
    score_answers,
)

PROPERTY = settings(max_examples=200, deadline=None, database=None)


def complete_answers(facts: Published) -> st.SearchStrategy[dict[str, int]]:
    """Any substantive answer to every item."""
    return st.fixed_dictionaries(
        {link: st.sampled_from(facts.values_of(link)) for link in facts.items}
    )


def bands_holding(scale: Scale, value: float) -> list[str]:
    return [band.code for interval, band in scale.bands if value in interval]


def tolerance(facts: Published) -> float:
    """Half a unit of the last reported decimal, whatever the rounding rule."""
    return 0.5 * 10.0**-facts.decimals + 1e-9


def unrounded_total(facts: Published, raw: int) -> float | None:
    """The published formula on the raw sum; ``None`` for a lookup table."""
    count = len(facts.items)
    if facts.kind == "mean":
        return raw / count
    if facts.kind == "transform-0-100":
        low, high = min(facts.values), max(facts.values)
        return 100 * (raw / count - low) / (high - low)
    if facts.kind == "lookup-table":
        return None
    return raw


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
@PROPERTY
@given(data=st.data())
def test_complete_answers_score_in_range_with_exactly_one_band(
    catalog: dict[str, Instrument], instrument_id: str, data: st.DataObject
) -> None:
    instrument, facts = catalog[instrument_id], PUBLISHED[instrument_id]
    answers = data.draw(complete_answers(facts))
    result = score_answers(instrument, answers)
    assert result.total is not None
    assert facts.low <= result.total <= facts.high
    assert result.missing == []
    assert result.raw == sum(item_score(facts, link, value) for link, value in answers.items())
    expected = unrounded_total(facts, result.raw)
    if expected is not None:
        assert abs(result.total - expected) <= tolerance(facts)
    if facts.bands:
        assert result.band is not None
        assert bands_holding(instrument.total, result.total) == [result.band.code]
        assert result.band.code == published_band(facts.bands, result.total).code
    else:
        assert result.band is None
    for scale in instrument.subscales:
        sub, value = facts.subscales[scale.id], result.subscales[scale.id]
        assert value is not None
        assert sub.low <= value <= sub.high
        if sub.bands:
            assert bands_holding(scale, value) == [result.subscale_bands[scale.id].code]
            assert result.subscale_bands[scale.id].code == published_band(sub.bands, value).code
        else:
            assert scale.id not in result.subscale_bands


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
@PROPERTY
@given(data=st.data())
def test_raising_an_item_score_never_moves_the_total_the_wrong_way(
    catalog: dict[str, Instrument], instrument_id: str, data: st.DataObject
) -> None:
    instrument, facts = catalog[instrument_id], PUBLISHED[instrument_id]
    answers = data.draw(complete_answers(facts))
    link = data.draw(st.sampled_from(facts.items))
    values = facts.values_of(link)
    lower, higher = data.draw(
        st.sampled_from(
            [
                (a, b)
                for a in values
                for b in values
                if item_score(facts, link, a) < item_score(facts, link, b)
            ]
        )
    )
    before = score_answers(instrument, answers | {link: lower})
    after = score_answers(instrument, answers | {link: higher})
    assert before.total is not None and after.total is not None
    if facts.kind == "lookup-table":
        assert after.total >= before.total
    else:
        assert after.total > before.total
    for sub_id, sub in facts.subscales.items():
        if link in sub.items:
            sub_before, sub_after = before.subscales[sub_id], after.subscales[sub_id]
            assert sub_before is not None and sub_after is not None
            assert sub_after > sub_before


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
@PROPERTY
@given(data=st.data())
def test_missing_items_follow_the_published_rule(
    catalog: dict[str, Instrument], instrument_id: str, data: st.DataObject
) -> None:
    facts = PUBLISHED[instrument_id]
    answers = data.draw(complete_answers(facts))
    unanswered = data.draw(st.sets(st.sampled_from(facts.items), min_size=1))
    result = score_answers(catalog[instrument_id], answers | dict.fromkeys(unanswered))
    assert result.missing == [link for link in facts.items if link in unanswered]
    allowed = 1 if instrument_id == "djg-6" else 0  # DJG manual: lones missing if mlones > 1
    if len(unanswered) > allowed:
        assert (result.total, result.raw, result.band) == (None, None, None)
        assert result.total_reason
    else:
        answered = [link for link in facts.items if link not in unanswered]
        assert result.total == sum(item_score(facts, link, answers[link]) for link in answered)
    for sub_id, sub in facts.subscales.items():
        assert (result.subscales[sub_id] is None) == bool(unanswered & set(sub.items))


def scored_twice(instrument: Instrument, pairs: list[tuple[str, int]]) -> tuple[Score, Score]:
    first = score_answers(instrument, dict(pairs))
    second = score_answers(instrument, validate(instrument, reversed(pairs)))
    return first, second


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
@PROPERTY
@given(data=st.data())
def test_scoring_is_deterministic(
    catalog: dict[str, Instrument], instrument_id: str, data: st.DataObject
) -> None:
    facts = PUBLISHED[instrument_id]
    answers = data.draw(complete_answers(facts))
    kept = data.draw(st.sets(st.sampled_from(facts.items)))
    pairs = [(link, value) for link, value in answers.items() if link in kept]
    first, second = scored_twice(catalog[instrument_id], pairs)
    assert first == second
    assert first == score_answers(catalog[instrument_id], dict(pairs))
