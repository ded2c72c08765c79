"""A patient's trend on one instrument as inline SVG, with the same numbers as table rows.

Pure: the history in (the definition and its screenings, newest first, each with the change
and trend ``Patients.history`` computed), the markup and rows out. The SVG carries its
colours as presentation attributes, so it reads the same without a stylesheet and in print;
``service/web/static/chart.css`` only sizes it. Every text in it is escaped.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from html import escape
from itertools import pairwise
from pathlib import PurePath
from typing import Protocol

from service.instruments.model import (
    Band,
    Definition,
    Direction,
    Interval,
    MinimalImportantDifference,
    NoThreshold,
    Provenance,
    ReliableChangeIndex,
    Severity,
    build,
)
from service.instruments.scoring import BandResult
from service.patients.model import Trend

WIDTH = 400
MARGIN_LEFT = 44
MARGIN_RIGHT = 12
PLOT_TOP = 34
PLOT_HEIGHT = 180
PLOT_INSET = 10
"""Space between the plot's sides and the oldest and newest points."""
FONT_SIZE = 13
CHAR_WIDTH = 0.6 * FONT_SIZE
"""An upper estimate of a character's width in the sans-serif the chart asks for."""
LEGEND_ROW = 17
X_TICKS = 3

TEXT = "#1a1a1a"
MUTED_TEXT = "#474747"
AXIS = "#595959"
BAND_EDGE = "#6b6b6b"
SERIES = "#1b3a6b"
CUT_OFF = "#8f2d00"
HALO = "#ffffff"
NOT_POSITIVE_FILLS = ("#e3eef8", "#cde0f1")
"""Light blues, alternating so that two neighbouring bands differ."""
POSITIVE_FILLS = {
    Severity.MILD: "#fff0c2",
    Severity.MODERATE: "#fcd9a8",
    Severity.SEVERE: "#f7c0a3",
}
POSITIVE_FILL = POSITIVE_FILLS[Severity.MODERATE]
"""Positive bands: light yellow to light vermilion by severity (Okabe-Ito hues, tinted), so
they differ from the blues for every kind of colour vision; labels name every band too."""

PROVENANCE_WORDS = {
    Provenance.PUBLISHED.value: "published cut-off",
    Provenance.CONVENTIONAL.value: "conventional band, not published by the authors",
}
FIRST_SCREENING = "first screening"
PREVIOUS_NOT_SCORED = "previous screening not scored"
NOT_SCORED = "not scored"
NO_THRESHOLD = "no threshold published"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ScreeningLike(Protocol):
    """What the chart reads of a screening (``service.patients.service.ScreeningChange``)."""

    @property
    def id(self) -> str: ...
    @property
    def completed_at(self) -> datetime: ...
    @property
    def total(self) -> float | None: ...
    @property
    def band(self) -> BandResult | None: ...
    @property
    def change(self) -> float | None: ...
    @property
    def trend(self) -> Trend | None: ...


class HistoryLike(Protocol):
    """One instrument's history (``service.patients.service.InstrumentChanges``)."""

    @property
    def definition(self) -> Definition: ...
    @property
    def screenings(self) -> Sequence[ScreeningLike]:
        """Newest first."""
        ...


@dataclass(frozen=True, slots=True)
class ChartRow:
    """One screening as the accessible table shows it; every field is ready to print."""

    screening_id: str
    completed_at: datetime
    date: str
    total: float | None
    score: str
    """The total as the instrument reports it, or "not scored: <reason>"."""
    band: str
    """The band's label; empty when unscored or the instrument has no bands."""
    positive: str
    """"yes" or "no"; empty without a band."""
    provenance: str
    change: float | None
    change_text: str
    """The signed change since the previous screening, e.g. "+3", or U+2212 and "2.5"; empty
    if none."""
    trend: str
    """"better", "worse", "no meaningful change", "no threshold published",
    "first screening", "previous screening not scored" or "not scored"."""


@dataclass(frozen=True, slots=True)
class ChartPoint:
    screening_id: str
    total: float
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class PlotArea:
    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def holds(self, x: float, y: float) -> bool:
        return self.left <= x <= self.right and self.top <= y <= self.bottom


@dataclass(frozen=True, slots=True)
class TrendChart:
    svg: str
    """Inline SVG markup, escaped throughout: insert it as is (``{{ chart.svg | safe }}``)."""
    title: str
    description: str
    """The chart in words, also the SVG's <desc>."""
    summary: str | None
    """The latest change in one sentence (:func:`latest_change_summary`)."""
    rows: tuple[ChartRow, ...]
    """One per screening, in the history's order (newest first)."""
    points: tuple[ChartPoint, ...]
    """The scored screenings as plotted, oldest first."""
    plot: PlotArea
    score_range: tuple[float, float]


@dataclass(frozen=True, slots=True)
class _Region:
    band: Band
    interval: Interval
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class _LegendLine:
    text: str
    swatch: str | None = None
    """The fill of the band the line starts."""
    dashed: bool = False
    """The line starts the cut-off's entry."""


@dataclass(frozen=True, slots=True)
class _CutOff:
    value: float
    """Where the line is drawn: the boundary between a positive band and the next."""
    words: str
    """Which scores are positive, e.g. "6 or more" or "below 12"."""
    provenance: str


def trend_chart(
    history: HistoryLike,
    *,
    score_range: tuple[float, float] | None = None,
    reasons: Mapping[str, str] | None = None,
    zone: tzinfo = UTC,
    id_prefix: str | None = None,
) -> TrendChart:
    """The chart and table of one instrument's screenings.

    ``score_range`` is the instrument's lowest and highest total (``Instrument.score_range``);
    without it, it is worked out from the definition. ``reasons`` maps a screening id to why
    it has no total (``Score.total_reason``). Dates are shown in ``zone``. ``id_prefix`` keeps
    the ids of the <title> and <desc> unique on a page (the instrument id by default).
    """
    definition = history.definition
    low, high = score_range if score_range is not None else _score_range(definition)
    if not high > low:
        raise ValueError(f"{definition.id}: score range {low}..{high} is empty")
    screenings = list(history.screenings)
    rows = tuple(
        _row(definition, screening, index == len(screenings) - 1, reasons or {}, zone)
        for index, screening in enumerate(screenings)
    )
    regions = _regions(definition.bands, low, high)
    cut_offs = _cut_offs(regions)
    summary = latest_change_summary(history, zone=zone)
    title = f"{definition.short_title}: trend of the screenings"
    description = _description(definition, rows, cut_offs, summary)
    legend_lines = _legend_lines(regions, _fills(regions), cut_offs)
    plot = PlotArea(MARGIN_LEFT, PLOT_TOP, WIDTH - MARGIN_LEFT - MARGIN_RIGHT, PLOT_HEIGHT)
    points = _points(screenings, plot, low, high)
    prefix = _safe_id(id_prefix if id_prefix is not None else f"chart-{definition.id}")
    svg = _svg(
        prefix=prefix,
        title=title,
        description=description,
        definition=definition,
        plot=plot,
        low=low,
        high=high,
        regions=regions,
        cut_offs=cut_offs,
        points=points,
        screenings=screenings,
        rows={row.screening_id: row for row in rows},
        zone=zone,
        legend_lines=legend_lines,
    )
    return TrendChart(
        svg=svg,
        title=title,
        description=description,
        summary=summary,
        rows=rows,
        points=points,
        plot=plot,
        score_range=(low, high),
    )


def latest_change_summary(history: HistoryLike, *, zone: tzinfo = UTC) -> str | None:
    """The newest screening's change in one sentence, e.g. "Better since 2 Mar 2026: 7 to 4,
    past the 3-point minimal important difference (source)"; None without screenings."""
    definition = history.definition
    screenings = list(history.screenings)
    if not screenings:
        return None
    latest = screenings[0]
    when = format_date(latest.completed_at, zone)
    if latest.total is None:
        return f"The latest screening, on {when}, was not scored."
    latest_score = format_score(latest.total, definition.scoring.decimals)
    previous = screenings[1] if len(screenings) > 1 else None
    if latest.change is None:
        if previous is None:
            return f"First screening: {latest_score} on {when}."
        return f"Latest {latest_score} on {when}; the screening before it was not scored."
    if previous is not None and previous.total is not None:
        since = f"since {format_date(previous.completed_at, zone)}"
        movement = f"{format_score(previous.total, definition.scoring.decimals)} to {latest_score}"
    else:
        since = "since the previous screening"
        movement = f"{_signed(latest.change, definition.scoring.decimals)} to {latest_score}"
    threshold = definition.meaningful_change
    if isinstance(threshold, NoThreshold) or latest.trend is None:
        return (
            f"Changed {since}: {movement}; no meaningful-change threshold is published "
            f"for {definition.short_title}, so it is not called better or worse."
        )
    measure = _threshold_words(threshold)
    if latest.trend is Trend.NO_MEANINGFUL_CHANGE:
        return f"No meaningful change {since}: {movement}, within the {measure}."
    return f"{latest.trend.value.capitalize()} {since}: {movement}, past the {measure}."


def format_date(moment: datetime, zone: tzinfo = UTC) -> str:
    """ "2 Mar 2026", the same in every locale."""
    day = moment.astimezone(zone) if moment.tzinfo is not None else moment
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def format_score(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _number(value: float) -> str:
    """A threshold or axis value without trailing zeros: 3.0 -> "3", 2.48 -> "2.48"."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _signed(value: float, decimals: int) -> str:
    text = format_score(abs(value), decimals)
    if float(text) == 0:
        return text
    return f"+{text}" if value > 0 else f"\u2212{text}"


def _threshold_words(threshold: MinimalImportantDifference | ReliableChangeIndex) -> str:
    if isinstance(threshold, MinimalImportantDifference):
        confirmed = (
            "" if threshold.provenance is Provenance.PUBLISHED else ", not confirmed for this scale"
        )
        return (
            f"{_number(threshold.value)}-point minimal important difference "
            f"({threshold.source}{confirmed})"
        )
    return (
        f"{_number(threshold.value)}-point reliable change "
        f"({threshold.sd_source}; {threshold.reliability_source})"
    )


def _score_range(definition: Definition) -> tuple[float, float]:
    return build(definition, PurePath(f"{definition.id}.yaml")).score_range()


def _row(
    definition: Definition,
    screening: ScreeningLike,
    oldest: bool,
    reasons: Mapping[str, str],
    zone: tzinfo,
) -> ChartRow:
    decimals = definition.scoring.decimals
    band = screening.band
    if screening.total is None:
        reason = reasons.get(screening.id)
        score = f"{NOT_SCORED}: {reason}" if reason else NOT_SCORED
        words = NOT_SCORED
    else:
        score = format_score(screening.total, decimals)
        if screening.change is None:
            words = FIRST_SCREENING if oldest else PREVIOUS_NOT_SCORED
        elif screening.trend is None:
            words = NO_THRESHOLD
        else:
            words = screening.trend.value
    return ChartRow(
        screening_id=screening.id,
        completed_at=screening.completed_at,
        date=format_date(screening.completed_at, zone),
        total=screening.total,
        score=score,
        band=band.label if band is not None else "",
        positive=("yes" if band.positive else "no") if band is not None else "",
        provenance=PROVENANCE_WORDS.get(band.provenance, band.provenance) if band else "",
        change=screening.change,
        change_text=_signed(screening.change, decimals) if screening.change is not None else "",
        trend=words,
    )


def _regions(bands: Sequence[Band], low: float, high: float) -> list[_Region]:
    """Each band's stretch of the axis, lowest first. Bands on integer scores leave gaps
    ([3, 5] then [6, 9]); the boundary is drawn halfway across the gap."""
    clipped = []
    for band in bands:
        interval = Interval.parse(band.range)
        start, end = max(interval.low, low), min(interval.high, high)
        if end >= start:
            clipped.append((start, end, interval, band))
    clipped.sort(key=lambda entry: (entry[0], entry[1]))
    regions = []
    for index, (start, end, interval, band) in enumerate(clipped):
        below = (clipped[index - 1][1] + start) / 2 if index > 0 else low
        above = (end + clipped[index + 1][0]) / 2 if index + 1 < len(clipped) else high
        regions.append(_Region(band, interval, max(below, low), min(above, high)))
    return regions


def _cut_offs(regions: Sequence[_Region]) -> list[_CutOff]:
    """Every boundary where a positive band meets one that is not."""
    cut_offs = []
    for lower, upper in pairwise(regions):
        if lower.band.positive == upper.band.positive:
            continue
        if upper.band.positive:
            positive = upper
            bound = _number(upper.interval.low)
            words = f"{bound} or more" if upper.interval.low_closed else f"above {bound}"
        else:
            positive = lower
            bound = _number(lower.interval.high)
            words = f"{bound} or less" if lower.interval.high_closed else f"below {bound}"
        cut_offs.append(_CutOff(lower.high, words, positive.band.provenance.value))
    return cut_offs


def _cut_off_words(cut_off: _CutOff) -> str:
    return f"{cut_off.provenance} cut-off {cut_off.words}"


def _description(
    definition: Definition,
    rows: Sequence[ChartRow],
    cut_offs: Sequence[_CutOff],
    summary: str | None,
) -> str:
    subject = f"{definition.short_title} {definition.construct.value.replace('-', ' ')}"
    direction = (
        "higher is worse" if definition.direction is Direction.HIGHER_WORSE else "higher is better"
    )
    if not rows:
        return f"{subject}: no screenings; {direction}."
    count = f"{len(rows)} screening" if len(rows) == 1 else f"{len(rows)} screenings"
    oldest, newest = rows[-1].date, rows[0].date
    span = f"on {oldest}" if oldest == newest else f"from {oldest} to {newest}"
    parts = [f"{subject}: {count} {span}"]
    scored = [row for row in rows if row.total is not None]
    if scored:
        latest = scored[0]
        if not definition.bands:
            parts.append(f"latest {latest.score}; no bands published")
        else:
            words = f"latest {latest.score}, {latest.band}"
            if cut_offs:
                words += f" ({'; '.join(_cut_off_words(c) for c in cut_offs)})"
            parts.append(words)
    else:
        parts.append("none scored")
    unscored = len(rows) - len(scored)
    if unscored and scored:
        parts.append(f"{unscored} not scored")
    parts.append(direction)
    text = "; ".join(parts) + "."
    return f"{text} {summary}" if summary else text


def _legend_lines(
    regions: Sequence[_Region], fills: Sequence[str], cut_offs: Sequence[_CutOff]
) -> list[_LegendLine]:
    """The legend, highest band first as on the chart, then the cut-off, wrapped to the
    chart's width."""
    if not regions:
        return [_LegendLine("No bands are published for this instrument.")]
    width = int((WIDTH - MARGIN_LEFT - MARGIN_RIGHT - 24) / CHAR_WIDTH)
    entries: list[tuple[str, str | None, bool]] = []
    for region, fill in reversed(list(zip(regions, fills, strict=True))):
        band = region.band
        kind = "positive" if band.positive else "not positive"
        provenance = "published" if band.provenance is Provenance.PUBLISHED else "conventional"
        text = f"{band.label}: {_interval_words(region.interval)} ({kind}; {provenance})"
        entries.append((text, fill, False))
    for cut_off in cut_offs:
        entries.append((f"Cut-off: {cut_off.words} ({cut_off.provenance})", None, True))
    lines = []
    for text, swatch, dashed in entries:
        for index, line in enumerate(textwrap.wrap(text, width)):
            first = index == 0
            lines.append(_LegendLine(line, swatch if first else None, dashed and first))
    return lines


def _interval_words(interval: Interval) -> str:
    low, high = _number(interval.low), _number(interval.high)
    low_words = low if interval.low_closed else f"above {low}"
    high_words = high if interval.high_closed else f"below {high}"
    if math.isinf(interval.low) and math.isinf(interval.high):
        return "every score"
    if math.isinf(interval.low):
        return f"{high} or less" if interval.high_closed else f"below {high}"
    if math.isinf(interval.high):
        return f"{low} or more" if interval.low_closed else f"above {low}"
    if interval.low == interval.high:
        return low
    return f"{low_words} to {high_words}"


def _points(
    screenings: Sequence[ScreeningLike], plot: PlotArea, low: float, high: float
) -> tuple[ChartPoint, ...]:
    """The scored screenings, oldest first: x by date (spread evenly when every screening
    has the same moment), y by total."""
    oldest_first = list(reversed(screenings))
    if not oldest_first:
        return ()
    start = oldest_first[0].completed_at.timestamp()
    span = oldest_first[-1].completed_at.timestamp() - start
    left, width = plot.left + PLOT_INSET, plot.width - 2 * PLOT_INSET
    points = []
    for index, screening in enumerate(oldest_first):
        if screening.total is None:
            continue
        if span > 0:
            fraction = (screening.completed_at.timestamp() - start) / span
        elif len(oldest_first) > 1:
            fraction = index / (len(oldest_first) - 1)
        else:
            fraction = 0.5
        fraction = min(max(fraction, 0.0), 1.0)
        points.append(
            ChartPoint(
                screening.id,
                screening.total,
                round(left + fraction * width, 2),
                round(_y(screening.total, plot, low, high), 2),
            )
        )
    return tuple(points)


def _y(value: float, plot: PlotArea, low: float, high: float) -> float:
    clamped = min(max(value, low), high)
    return plot.top + (high - clamped) / (high - low) * plot.height


def _y_ticks(low: float, high: float) -> list[float]:
    """Round values across the range, at most seven."""
    span = high - low
    magnitude = 10 ** math.floor(math.log10(span))
    step = next(
        candidate * magnitude / 10
        for candidate in (1, 2, 2.5, 5, 10, 20, 25, 50, 100)
        if span / (candidate * magnitude / 10) <= 6
    )
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 6))
        value += step
    return ticks


def _x_ticks(
    screenings: Sequence[ScreeningLike], plot: PlotArea, zone: tzinfo
) -> list[tuple[float, str, str]]:
    """(x, anchor, date) for up to three dates evenly across the time axis."""
    if not screenings:
        return []
    oldest, newest = screenings[-1].completed_at, screenings[0].completed_at
    left, width = plot.left + PLOT_INSET, plot.width - 2 * PLOT_INSET
    span = newest.timestamp() - oldest.timestamp()
    if span <= 0:
        return [(left + width / 2, "middle", format_date(oldest, zone))]
    ticks: list[tuple[float, str, str]] = []
    seen: set[str] = set()
    for index in range(X_TICKS):
        fraction = index / (X_TICKS - 1)
        moment = datetime.fromtimestamp(oldest.timestamp() + fraction * span, tz=UTC)
        label = format_date(moment, zone)
        if label in seen:
            continue
        seen.add(label)
        anchor = "start" if index == 0 else "end" if index == X_TICKS - 1 else "middle"
        ticks.append((left + fraction * width, anchor, label))
    return ticks


def _fill(region: _Region, index_among_negatives: int) -> str:
    if region.band.positive:
        return POSITIVE_FILLS.get(region.band.severity, POSITIVE_FILL)
    return NOT_POSITIVE_FILLS[index_among_negatives % len(NOT_POSITIVE_FILLS)]


def _fills(regions: Sequence[_Region]) -> list[str]:
    fills, negatives = [], 0
    for region in regions:
        fills.append(_fill(region, negatives))
        negatives += not region.band.positive
    return fills


def _safe_id(text: str) -> str:
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in text)
    return cleaned if cleaned[:1].isalpha() else f"c-{cleaned}"


def _text(x: float, y: float, content: str, **attributes: str) -> str:
    extra = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"'
        for name, value in attributes.items()
    )
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


def _svg(
    *,
    prefix: str,
    title: str,
    description: str,
    definition: Definition,
    plot: PlotArea,
    low: float,
    high: float,
    regions: Sequence[_Region],
    cut_offs: Sequence[_CutOff],
    points: Sequence[ChartPoint],
    screenings: Sequence[ScreeningLike],
    rows: Mapping[str, ChartRow],
    zone: tzinfo,
    legend_lines: Sequence[_LegendLine],
) -> str:
    legend_top = plot.bottom + 36
    height = legend_top + LEGEND_ROW * len(legend_lines) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend-chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" aria-labelledby="{prefix}-title {prefix}-desc" '
        f"font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif\" "
        f'font-size="{FONT_SIZE}" fill="{TEXT}">',
        f'<title id="{prefix}-title">{escape(title)}</title>',
        f'<desc id="{prefix}-desc">{escape(description)}</desc>',
    ]
    parts.append(_direction(definition, plot))
    fills = _fills(regions)
    parts.append('<g class="chart-bands">')
    if not regions:
        parts.append(
            f'<rect class="chart-plot" x="{plot.left}" y="{plot.top}" width="{plot.width}" '
            f'height="{plot.height}" fill="#ffffff" stroke="{AXIS}"/>'
        )
    for region, fill in zip(regions, fills, strict=True):
        top, bottom = _y(region.high, plot, low, high), _y(region.low, plot, low, high)
        parts.append(
            f'<rect class="chart-band" data-band="{escape(region.band.code)}" '
            f'x="{plot.left}" y="{top:.2f}" width="{plot.width}" height="{bottom - top:.2f}" '
            f'fill="{fill}"/>'
        )
    parts.append("</g>")
    grid = "#ffffff" if regions else "#dddddd"
    parts.append('<g class="chart-grid">')
    for tick in _y_ticks(low, high):
        y = _y(tick, plot, low, high)
        parts.append(
            f'<line x1="{plot.left}" x2="{plot.right}" y1="{y:.2f}" y2="{y:.2f}" '
            f'stroke="{grid}" stroke-width="1"/>'
        )
        parts.append(_text(plot.left - 6, y + 4, _number(tick), text_anchor="end", fill=MUTED_TEXT))
    parts.append("</g>")
    parts.append('<g class="chart-band-edges">')
    for region in regions[1:]:
        y = _y(region.low, plot, low, high)
        parts.append(
            f'<line x1="{plot.left}" x2="{plot.right}" y1="{y:.2f}" y2="{y:.2f}" '
            f'stroke="{BAND_EDGE}" stroke-width="1"/>'
        )
    parts.append("</g>")
    parts.append('<g class="chart-band-labels">')
    for region in regions:
        top, bottom = _y(region.high, plot, low, high), _y(region.low, plot, low, high)
        fits = len(region.band.label) * CHAR_WIDTH <= plot.width - 12
        if bottom - top >= FONT_SIZE + 6 and fits:
            parts.append(
                _text(
                    plot.left + 6,
                    top + FONT_SIZE + 2,
                    region.band.label,
                    class_="chart-band-label",
                    paint_order="stroke",
                    stroke=HALO,
                    stroke_width="3",
                    stroke_linejoin="round",
                )
            )
    parts.append("</g>")
    for cut_off in cut_offs:
        y = _y(cut_off.value, plot, low, high)
        label = "cut-off"
        label_y = y - 4 if y - plot.top > FONT_SIZE + 4 else y + FONT_SIZE + 2
        parts.append(
            f'<g class="chart-cutoff"><line x1="{plot.left}" x2="{plot.right}" '
            f'y1="{y:.2f}" y2="{y:.2f}" stroke="{CUT_OFF}" stroke-width="2" '
            f'stroke-dasharray="6 4"/>'
            + _text(
                plot.right - 4,
                label_y,
                label,
                text_anchor="end",
                fill=CUT_OFF,
                font_weight="bold",
                paint_order="stroke",
                stroke=HALO,
                stroke_width="3",
                stroke_linejoin="round",
            )
            + "</g>"
        )
    parts.append(
        f'<g class="chart-axes" stroke="{AXIS}" stroke-width="1">'
        f'<line x1="{plot.left}" x2="{plot.left}" y1="{plot.top}" y2="{plot.bottom}"/>'
        f'<line x1="{plot.left}" x2="{plot.right}" y1="{plot.bottom}" y2="{plot.bottom}"/>'
        "</g>"
    )
    parts.append('<g class="chart-dates">')
    for x, anchor, label in _x_ticks(screenings, plot, zone):
        parts.append(
            f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{plot.bottom}" y2="{plot.bottom + 4}" '
            f'stroke="{AXIS}"/>'
        )
        parts.append(_text(x, plot.bottom + 18, label, text_anchor=anchor, fill=MUTED_TEXT))
    parts.append("</g>")
    parts.append(_series(points, rows))
    parts.append(_legend(legend_lines, legend_top))
    parts.append("</svg>")
    return "".join(parts)


def _direction(definition: Definition, plot: PlotArea) -> str:
    """ "Score" and an arrow towards the better end, in words too."""
    up = definition.direction is Direction.HIGHER_BETTER
    words = "Higher score is better" if up else "Lower score is better"
    x, top, bottom = plot.left + 4, 8.0, 24.0
    tip, tail = (top, bottom) if up else (bottom, top)
    head = 5 if up else -5
    return (
        '<g class="chart-direction">'
        f'<line x1="{x}" x2="{x}" y1="{tail}" y2="{tip}" stroke="{TEXT}" stroke-width="2"/>'
        f'<path d="M{x - 4},{tip + head} L{x},{tip} L{x + 4},{tip + head}" fill="none" '
        f'stroke="{TEXT}" stroke-width="2"/>'
        + _text(x + 10, 20, words, font_weight="bold")
        + _text(WIDTH - MARGIN_RIGHT, 20, "Score by date", text_anchor="end", fill=MUTED_TEXT)
        + "</g>"
    )


def _series(points: Sequence[ChartPoint], rows: Mapping[str, ChartRow]) -> str:
    if not points:
        return '<g class="chart-series"></g>'
    radius = 4 if len(points) <= 30 else 3 if len(points) <= 80 else 2
    parts = ['<g class="chart-series">']
    if len(points) > 1:
        path = " ".join(
            f"{'M' if index == 0 else 'L'}{point.x},{point.y}" for index, point in enumerate(points)
        )
        parts.append(
            f'<path class="chart-line" d="{path}" fill="none" stroke="{SERIES}" '
            f'stroke-width="2" stroke-linejoin="round"/>'
        )
    for point in points:
        row = rows[point.screening_id]
        band = f", {row.band}" if row.band else ""
        parts.append(
            f'<circle class="chart-point" data-score="{point.total!r}" cx="{point.x}" '
            f'cy="{point.y}" r="{radius}" fill="{SERIES}" stroke="{HALO}" stroke-width="1.5">'
            f"<title>{escape(f'{row.date}: {row.score}{band}')}</title></circle>"
        )
    parts.append("</g>")
    return "".join(parts)


def _legend(lines: Sequence[_LegendLine], top: float) -> str:
    parts = ['<g class="chart-legend">']
    for index, line in enumerate(lines):
        y = top + index * LEGEND_ROW
        if line.swatch is not None:
            parts.append(
                f'<rect x="{MARGIN_LEFT}" y="{y - 10:.1f}" width="14" height="12" '
                f'fill="{line.swatch}" stroke="{BAND_EDGE}"/>'
            )
        if line.dashed:
            parts.append(
                f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + 14}" y1="{y - 4:.1f}" '
                f'y2="{y - 4:.1f}" stroke="{CUT_OFF}" stroke-width="2" stroke-dasharray="4 2"/>'
            )
        parts.append(_text(MARGIN_LEFT + 20, y, line.text))
    parts.append("</g>")
    return "".join(parts)
