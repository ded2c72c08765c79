"""The trend chart of every instrument, drawn from totals the real scoring engine computes:
well-formed, labelled SVG whose points sit in their bands, and table rows with the same
numbers and the history's trend words."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.instruments.model import (
    Band,
    Instrument,
    Interval,
    MinimalImportantDifference,
    NoThreshold,
    build,
)
from service.instruments.scoring import BandResult, Score, score
from service.patients.chart import (
    AXIS,
    BAND_EDGE,
    CUT_OFF,
    FIRST_SCREENING,
    MUTED_TEXT,
    NO_THRESHOLD,
    NOT_POSITIVE_FILLS,
    NOT_SCORED,
    POSITIVE_FILLS,
    PREVIOUS_NOT_SCORED,
    PROVENANCE_WORDS,
    SERIES,
    TEXT,
    TrendChart,
    latest_change_summary,
    trend_chart,
)
from service.patients.model import trend
from service.patients.service import InstrumentChanges, ScreeningChange
from tests.instruments.conftest import INSTRUMENT_IDS

SVG = "{http://www.w3.org/2000/svg}"
FIRST_DAY = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FRACTIONS = (0.0, 1.0, 0.5, 0.25, 0.75, 0.6)
"""Where in each item's options the answers of successive screenings sit."""


def answers_at(instrument: Instrument, fraction: float) -> dict[str, int]:
    """Every item answered with the option ``fraction`` of the way along its counted ones."""
    answers = {}
    for link_id in instrument.link_ids:
        values = sorted(instrument.scores[link_id])
        answers[link_id] = values[round(fraction * (len(values) - 1))]
    return answers


def history_of(
    instrument: Instrument, scores: Sequence[Score], moments: Sequence[datetime] | None = None
) -> InstrumentChanges:
    """The history ``Patients.history`` returns for these scores taken oldest first: newest
    first, each with its change from the one before and that change's trend."""
    definition = instrument.definition
    moments = moments or [FIRST_DAY + timedelta(days=37 * i) for i in range(len(scores))]
    changes = []
    older_total: float | None = None
    for index, (result, moment) in enumerate(zip(scores, moments, strict=True)):
        change = (
            round(result.total - older_total, 4)
            if result.total is not None and older_total is not None
            else None
        )
        changes.append(
            ScreeningChange(
                id=f"scr-{index}",
                completed_at=moment,
                total=result.total,
                band=result.band,
                change=change,
                trend=trend(change, definition.direction, definition.meaningful_change),
            )
        )
        older_total = result.total
    return InstrumentChanges(definition, list(reversed(changes)))


def scored_history(instrument: Instrument) -> tuple[InstrumentChanges, dict[str, str]]:
    """Six scored screenings and, third oldest, one with every item unanswered; with the
    unscored one's reason as ``Score.total_reason`` gives it."""
    scores = [score(instrument, answers_at(instrument, f)) for f in FRACTIONS]
    unscored = score(instrument, {})
    assert unscored.total is None and unscored.total_reason
    scores.insert(2, unscored)
    history = history_of(instrument, scores)
    reasons = {s.id: unscored.total_reason for s in history.screenings if s.total is None}
    return history, reasons


def parse(chart: TrendChart) -> ET.Element:
    root = ET.fromstring(chart.svg)
    assert root.tag == f"{SVG}svg"
    return root


def with_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def points_of(root: ET.Element) -> list[tuple[float, float, float]]:
    """(score, cx, cy) of every plotted point, in document order (oldest first)."""
    return [
        (float(c.get("data-score", "")), float(c.get("cx", "")), float(c.get("cy", "")))
        for c in with_class(root, "chart-point")
    ]


def expected_words(screening: ScreeningChange, oldest: bool) -> str:
    if screening.total is None:
        return NOT_SCORED
    if screening.change is None:
        return FIRST_SCREENING if oldest else PREVIOUS_NOT_SCORED
    if screening.trend is None:
        return NO_THRESHOLD
    return screening.trend.value


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_chart_of_every_instrument(catalog: dict[str, Instrument], instrument_id: str) -> None:
    instrument = catalog[instrument_id]
    definition = instrument.definition
    history, reasons = scored_history(instrument)
    chart = trend_chart(history, score_range=instrument.score_range(), reasons=reasons)
    root = parse(chart)

    assert root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text == chart.title
    assert desc is not None and desc.text == chart.description
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert definition.short_title in chart.description
    assert ("higher is worse" in chart.description) is (
        definition.direction.value == "higher-worse"
    )

    bands = with_class(root, "chart-band")
    assert sorted(b.get("data-band", "") for b in bands) == sorted(b.code for b in definition.bands)
    has_positive = any(band.positive for band in definition.bands)
    assert bool(with_class(root, "chart-cutoff")) is has_positive
    assert ("cut-off" in chart.description) is has_positive

    scored = [s for s in reversed(history.screenings) if s.total is not None]
    plotted = points_of(root)
    assert [total for total, _, _ in plotted] == [s.total for s in scored]
    assert [(p.x, p.y) for p in chart.points] == [(x, y) for _, x, y in plotted]
    for _, x, y in plotted:
        assert chart.plot.holds(x, y)
    xs = [x for _, x, _ in plotted]
    assert xs == sorted(xs)
    line = with_class(root, "chart-line")
    assert len(line) == 1 and line[0].get("d", "").count("L") == len(scored) - 1

    assert len(chart.rows) == len(history.screenings)
    for index, (row, screening) in enumerate(zip(chart.rows, history.screenings, strict=True)):
        oldest = index == len(history.screenings) - 1
        assert row.screening_id == screening.id
        assert row.total == screening.total
        assert row.trend == expected_words(screening, oldest)
        if screening.total is None:
            assert row.score == f"not scored: {reasons[screening.id]}"
            assert row.band == row.positive == row.provenance == ""
        elif screening.band is None:
            assert not definition.bands and row.band == row.positive == ""
        else:
            assert row.band == screening.band.label
            assert row.positive == ("yes" if screening.band.positive else "no")
            assert row.provenance == PROVENANCE_WORDS[screening.band.provenance]
    assert chart.rows[-1].trend == FIRST_SCREENING
    assert chart.rows[-4].trend == PREVIOUS_NOT_SCORED  # the one after the unscored


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_every_point_sits_in_its_band(catalog: dict[str, Instrument], instrument_id: str) -> None:
    """Band regions are drawn where the scores fall, across gaps between integer bands too;
    and a positive point is on the positive side of every cut-off line."""
    instrument = catalog[instrument_id]
    history, _ = scored_history(instrument)
    root = parse(trend_chart(history, score_range=instrument.score_range()))
    regions = {
        rect.get("data-band"): (float(rect.get("y", "")), float(rect.get("height", "")))
        for rect in with_class(root, "chart-band")
    }
    cut_offs = [float(g[0].get("y1", "")) for g in with_class(root, "chart-cutoff")]
    scored = [s for s in reversed(history.screenings) if s.total is not None]
    for screening, (_, _, y) in zip(scored, points_of(root), strict=True):
        if screening.band is None:
            continue
        top, height = regions[screening.band.code]
        assert top <= y <= top + height
        for cut in cut_offs:
            positive_above = any(
                band.positive and regions[band.code][0] < cut
                for band in instrument.definition.bands
            )
            if y != cut:  # a score on a half-open band's bound sits on the line
                assert (y < cut) is (screening.band.positive is positive_above)


def test_cut_off_line_is_halfway_across_an_integer_gap(catalog: dict[str, Instrument]) -> None:
    instrument = catalog["ucla-3"]  # not lonely [3, 5], lonely [6, 9]
    history, _ = scored_history(instrument)
    chart = trend_chart(history, score_range=(3, 9))
    line = with_class(parse(chart), "chart-cutoff")[0][0]
    plot = chart.plot
    assert float(line.get("y1", "")) == pytest.approx(plot.top + (9 - 5.5) / 6 * plot.height)
    assert "(conventional cut-off 6 or more)" in chart.description


def test_score_range_from_the_definition_alone(catalog: dict[str, Instrument]) -> None:
    for instrument in catalog.values():
        history, _ = scored_history(instrument)
        chart = trend_chart(history)
        assert chart.score_range == instrument.score_range()


def test_a_title_and_labels_with_markup_stay_well_formed(catalog: dict[str, Instrument]) -> None:
    instrument = catalog["ucla-3"]
    nasty = "<b>&amp; \"quoted\" 'x' ]]></svg><script>alert(1)</script>"
    definition = msgspec.structs.replace(
        instrument.definition,
        short_title=f"UCLA {nasty}",
        bands=[
            msgspec.structs.replace(band, label=f"{band.label} {nasty}")
            for band in instrument.definition.bands
        ],
    )
    marked = build(definition, PurePath("ucla-3.yaml"))
    history, _ = scored_history(marked)
    chart = trend_chart(history, id_prefix='x" onload="alert(1)')
    root = parse(chart)
    assert "<script" not in chart.svg and "onload=" not in chart.svg.replace("&quot;", "")
    assert [e for e in root.iter() if e.tag.endswith("script")] == []
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and nasty in (title.text or "")
    assert desc is not None and nasty in (desc.text or "")
    point_titles = [t.text or "" for c in with_class(root, "chart-point") for t in c]
    assert point_titles and all(nasty in text for text in point_titles)
    legend = "".join(with_class(root, "chart-legend")[0].itertext())
    squeezed = "".join(nasty.split())  # the legend wraps at spaces
    assert "".join(legend.split()).count(squeezed) == len(definition.bands)
    assert all(nasty in row.band for row in chart.rows if row.total is not None)


def test_one_screening(catalog: dict[str, Instrument]) -> None:
    instrument = catalog["promis-si-4a"]
    history = history_of(instrument, [score(instrument, answers_at(instrument, 0.5))])
    chart = trend_chart(history)
    root = parse(chart)
    assert len(points_of(root)) == 1
    assert with_class(root, "chart-line") == []
    assert [row.trend for row in chart.rows] == [FIRST_SCREENING]
    assert "1 screening on 2 Mar 2026" in chart.description
    assert chart.summary is not None and chart.summary.startswith("First screening: ")


def test_identical_dates_are_spread_apart(catalog: dict[str, Instrument]) -> None:
    instrument = catalog["djg-6"]
    scores = [score(instrument, answers_at(instrument, f)) for f in FRACTIONS]
    chart = trend_chart(history_of(instrument, scores, [FIRST_DAY] * len(scores)))
    plotted = points_of(parse(chart))
    xs = [x for _, x, _ in plotted]
    assert len(set(xs)) == len(xs) == len(scores)
    assert all(chart.plot.holds(x, y) for _, x, y in plotted)
    assert "6 screenings on 2 Mar 2026" in chart.description


def test_a_long_history(catalog: dict[str, Instrument]) -> None:
    instrument = catalog["mspss"]
    scores = [score(instrument, answers_at(instrument, (i % 13) / 12)) for i in range(150)]
    moments = [FIRST_DAY + timedelta(days=3 * i) for i in range(150)]
    chart = trend_chart(history_of(instrument, scores, moments))
    plotted = points_of(parse(chart))
    assert len(plotted) == len(chart.rows) == 150
    assert all(chart.plot.holds(x, y) for _, x, y in plotted)
    assert len(with_class(parse(chart), "chart-dates")[0].findall(f"{SVG}text")) == 3


def test_nothing_scored_and_nothing_screened(catalog: dict[str, Instrument]) -> None:
    instrument = catalog["lsns-6"]
    chart = trend_chart(history_of(instrument, [score(instrument, {})]))
    assert points_of(parse(chart)) == []
    assert "none scored" in chart.description
    assert chart.rows[0].score.startswith("not scored")
    empty = trend_chart(InstrumentChanges(instrument.definition, []))
    assert parse(empty).get("role") == "img"
    assert empty.rows == () and "no screenings" in empty.description
    assert latest_change_summary(InstrumentChanges(instrument.definition, [])) is None


def test_no_bands(catalog: dict[str, Instrument]) -> None:
    instrument = catalog["peg"]
    history, _ = scored_history(instrument)
    chart = trend_chart(history)
    root = parse(chart)
    assert with_class(root, "chart-band") == [] and with_class(root, "chart-cutoff") == []
    assert "no bands published" in chart.description
    legend = "".join(with_class(root, "chart-legend")[0].itertext())
    assert legend == "No bands are published for this instrument."


def test_change_past_the_threshold_is_better_or_worse(catalog: dict[str, Instrument]) -> None:
    """PROMIS Social Isolation: higher is worse, 3 T points are meaningful."""
    instrument = catalog["promis-si-8a"]
    mid = instrument.definition.meaningful_change
    assert isinstance(mid, MinimalImportantDifference)
    low, high, middle = (score(instrument, answers_at(instrument, f)) for f in (0, 1, 0.5))
    assert low.total is not None and high.total is not None
    chart = trend_chart(history_of(instrument, [high, low, low, middle]))
    assert [row.trend for row in chart.rows] == [
        "worse",
        "no meaningful change",
        "better",
        FIRST_SCREENING,
    ]
    assert chart.rows[2].change_text == f"\u2212{high.total - low.total:.1f}"
    assert mid.provenance.value == "conventional"
    assert chart.summary == (
        f"Worse since 15 May 2026: {low.total:.1f} to {middle.total:.1f}, past the 3-point "
        f"minimal important difference ({mid.source}, not confirmed for this scale)."
    )
    steady = latest_change_summary(history_of(instrument, [high, low, low]))
    assert steady is not None and steady.startswith(
        f"No meaningful change since 8 Apr 2026: {low.total:.1f} to {low.total:.1f}, within the"
    )


def test_no_threshold_is_never_better_or_worse(catalog: dict[str, Instrument]) -> None:
    instrument = catalog["ucla-3"]
    assert isinstance(instrument.definition.meaningful_change, NoThreshold)
    worst, best = (score(instrument, answers_at(instrument, f)) for f in (1, 0))
    chart = trend_chart(history_of(instrument, [worst, best]))
    assert [row.trend for row in chart.rows] == [NO_THRESHOLD, FIRST_SCREENING]
    assert chart.summary == (
        "Changed since 2 Mar 2026: 9 to 3; no meaningful-change threshold is published for "
        "UCLA-3, so it is not called better or worse."
    )


def relative_luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    light, dark = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


BACKGROUNDS = ("#ffffff", *NOT_POSITIVE_FILLS, *POSITIVE_FILLS.values())


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_colours_meet_wcag_aa_on_every_band(background: str) -> None:
    for text in (TEXT, MUTED_TEXT, CUT_OFF):  # the cut-off label is text too
        assert contrast(text, background) >= 4.5, (text, background)
    for graphic in (SERIES, AXIS, BAND_EDGE):
        assert contrast(graphic, background) >= 3, (graphic, background)


def test_every_colour_in_the_svg_is_from_the_palette(catalog: dict[str, Instrument]) -> None:
    palette = {
        c.lower()
        for c in (*BACKGROUNDS, TEXT, MUTED_TEXT, CUT_OFF, SERIES, AXIS, BAND_EDGE, "#dddddd")
    }
    for instrument in catalog.values():
        history, _ = scored_history(instrument)
        colours = set(re.findall(r"#[0-9a-fA-F]{6}", trend_chart(history).svg))
        assert {c.lower() for c in colours} <= palette


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data())
def test_points_rise_with_the_score(catalog: dict[str, Instrument], data: st.DataObject) -> None:
    """The score axis points up for every instrument: a higher total is drawn higher (a
    smaller y), an equal total at the same height, whichever way is better."""
    instrument = catalog[data.draw(st.sampled_from(INSTRUMENT_IDS))]
    low, high = instrument.score_range()
    decimals = instrument.definition.scoring.decimals
    totals = data.draw(
        st.lists(
            st.floats(low, high, allow_nan=False).map(lambda v: round(v, decimals)),
            min_size=1,
            max_size=40,
        )
    )
    definition = instrument.definition
    results = [
        Score(definition.id, total, None, {}, band_of(definition.bands, total), [])
        for total in totals
    ]
    chart = trend_chart(history_of(instrument, results), score_range=(low, high))
    plotted = points_of(parse(chart))
    assert [total for total, _, _ in plotted] == totals
    for total_a, _, y_a in plotted:
        for total_b, _, y_b in plotted:
            if total_a < total_b:
                assert y_a > y_b
            elif total_a == total_b:
                assert y_a == y_b
    for _, x, y in plotted:
        assert chart.plot.holds(x, y)


def band_of(bands: Sequence[Band], total: float) -> BandResult | None:
    for band in bands:
        if total in Interval.parse(band.range):
            return BandResult.of(band)
    return None
