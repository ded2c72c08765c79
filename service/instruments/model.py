"""Instrument definitions: the Structs, and their resolution into what scoring needs.

A definition is data, decoded once at start-up (service/instruments/loader.py reads the
files). Everything the scoring engine needs
(item order, option values, reverse keys, subscales, bands, lookup tables) is resolved
here into plain lookups so that scoring itself does no parsing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePath
from typing import Annotated

import msgspec

from service.fhir import CANONICAL_BASE

LOINC = "http://loinc.org"

Identifier = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
LinkId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Text = Annotated[str, msgspec.Meta(min_length=1)]


class Construct(StrEnum):
    LONELINESS = "loneliness"
    SOCIAL_NETWORK = "social-network"
    SOCIAL_SUPPORT = "social-support"
    PAIN = "pain"


class Direction(StrEnum):
    HIGHER_WORSE = "higher-worse"
    HIGHER_BETTER = "higher-better"


class Method(StrEnum):
    SUM = "sum"
    MEAN = "mean"
    TRANSFORM_0_100 = "transform-0-100"
    LOOKUP_TABLE = "lookup-table"
    DICHOTOMOUS_COUNT = "dichotomous-count"


class Signal(StrEnum):
    LONELINESS = "loneliness"
    SOCIAL_ISOLATION = "social_isolation"
    LOW_SUPPORT = "low_support"


class Severity(StrEnum):
    NONE = "none"
    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


class Provenance(StrEnum):
    PUBLISHED = "published"
    CONVENTIONAL = "conventional"


class Source(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    citation: Text
    url: str | None = None


class Coding(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """A code from a published system (LOINC unless ``system`` says otherwise)."""

    code: Text
    display: Text
    system: str = LOINC


class Licence(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    note: Text
    free_use: bool
    """True only where the owner's terms allow use without asking; False where
    permission is needed or the terms are unconfirmed."""
    licensed_group: Identifier | None = None
    """Instruments shipped disabled; enabled by naming the group in
    ``BELONG_LICENSED_INSTRUMENTS``."""


class AnswerOption(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    value: int
    """What a submission sends, numbered as the authors publish."""
    display: Text
    code: Text | None = None
    """LOINC answer (LA) code where one is confirmed."""
    score: int | None = None
    """What the answer counts for when it differs from ``value`` (dichotomous items)."""
    declined: bool = False
    """A recorded refusal: kept, but scored as a missing item."""


class Preamble(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Text the instrument prints before a block of items, such as who counts as family."""

    title: Text
    text: Text


class Item(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    linkId: LinkId
    text: Text
    options: Identifier
    """Name of an entry in the definition's ``option_sets``."""
    code: Coding | None = None
    reverse: bool = False
    preamble: Identifier | None = None
    """Name of an entry in the definition's ``preambles``, shown before the item's block."""
    wording_source: Text | None = None
    """Where the item text comes from, where copies of the instrument word it differently."""


class MissingRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    max_missing: Annotated[int, msgspec.Meta(ge=0)]
    """How many items may be unanswered before the score is withheld; a score with
    missing items is computed over the answered ones, never prorated."""
    rule: Text
    provenance: Provenance
    source: Text


class Band(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    range: Annotated[str, msgspec.Meta(pattern=r"^[\[(]\s*-?[0-9.]*\s*,\s*-?[0-9.]*\s*[\])]$")]
    """An interval such as ``[3, 5]``, ``[1, 3)`` or ``(5, 7]``; an empty end is open."""
    code: Identifier
    label: Text
    positive: bool
    severity: Severity
    provenance: Provenance
    source: Text
    signal: Signal | None = None


Positive = Annotated[float, msgspec.Meta(gt=0)]


class MinimalImportantDifference(
    msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag="mid", tag_field="kind"
):
    """A minimal important difference published for the measure, on the reported score;
    ``provenance`` says whether it is confirmed for this instrument."""

    value: Positive
    source: Text
    provenance: Provenance
    note: Text


class ReliableChangeIndex(
    msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag="rci", tag_field="kind"
):
    """The change beyond measurement error at 95%: 1.96 x SD x sqrt(2) x sqrt(1 - r),
    from a published SD and reliability (checked when the definition loads)."""

    value: Positive
    sd: Positive
    sd_source: Text
    reliability: Annotated[float, msgspec.Meta(gt=0, lt=1)]
    reliability_source: Text
    provenance: Provenance
    note: Text
    """The arithmetic, written out."""

    def computed(self) -> float:
        return 1.96 * self.sd * math.sqrt(2) * math.sqrt(1 - self.reliability)


class NoThreshold(
    msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag="none", tag_field="kind"
):
    """No threshold: neither a published MID nor the SD and reliability for an RCI."""

    reason: Text


MeaningfulChange = MinimalImportantDifference | ReliableChangeIndex | NoThreshold
"""How large a change in the total must be before it is called better or worse."""


class Scoring(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    method: Method
    missing: MissingRule
    decimals: Annotated[int, msgspec.Meta(ge=0, le=4)] = 0
    table: dict[int, float] | None = None
    """Raw sum -> reported score (``lookup-table``)."""
    standard_errors: dict[int, float] | None = None
    code: Coding | None = None
    """Code of the reported total, for its Observation."""
    unit: str = "{score}"
    items: list[LinkId] | None = None
    """Items the total is computed over; all items when absent."""


class Subscale(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    id: Identifier
    title: Text
    items: Annotated[list[LinkId], msgspec.Meta(min_length=1)]
    method: Method
    missing: MissingRule
    decimals: Annotated[int, msgspec.Meta(ge=0, le=4)] = 0
    code: Coding | None = None
    bands: list[Band] = []


class Definition(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    id: Identifier
    title: Text
    short_title: Text
    version: Text
    construct: Construct
    direction: Direction
    citation: Text
    licence: Licence
    sources: Annotated[list[Source], msgspec.Meta(min_length=1)]
    option_sets: dict[Identifier, Annotated[list[AnswerOption], msgspec.Meta(min_length=1)]]
    items: Annotated[list[Item], msgspec.Meta(min_length=1)]
    scoring: Scoring
    meaningful_change: MeaningfulChange
    panel: Coding | None = None
    """A LOINC panel code, only where a source says the code is a panel."""
    preambles: dict[Identifier, Preamble] = {}
    subscales: list[Subscale] = []
    bands: list[Band] = []
    notes: list[Text] = []
    """What the reference could not confirm, and other caveats a clinician should see."""


class InstrumentError(ValueError):
    """A definition file that cannot be used; the message names the file and field."""


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float
    low_closed: bool
    high_closed: bool

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    @classmethod
    def parse(cls, text: str) -> Interval:
        low_text, high_text = (part.strip() for part in text.strip()[1:-1].split(","))
        return cls(
            low=float(low_text) if low_text else -math.inf,
            high=float(high_text) if high_text else math.inf,
            low_closed=text.strip().startswith("["),
            high_closed=text.strip().endswith("]"),
        )


@dataclass(frozen=True, slots=True)
class Scale:
    """A total or a subscale, resolved for scoring."""

    id: str
    link_ids: tuple[str, ...]
    method: Method
    missing: MissingRule
    decimals: int
    bands: tuple[tuple[Interval, Band], ...]
    item_min: int
    item_max: int
    raw_min: int
    raw_max: int
    table: Mapping[int, float] | None = None

    def range(self) -> tuple[float, float]:
        """The lowest and highest value the scale can report."""
        if self.table is not None:
            return min(self.table.values()), max(self.table.values())
        if self.method is Method.MEAN:
            return float(self.item_min), float(self.item_max)
        if self.method is Method.TRANSFORM_0_100:
            return 0.0, 100.0
        return float(self.raw_min), float(self.raw_max)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A definition with the lookups scoring needs, built once at load time."""

    definition: Definition
    options: Mapping[str, Mapping[int, AnswerOption]]
    """linkId -> option value -> option."""
    scores: Mapping[str, Mapping[int, int]]
    """linkId -> option value -> the score it counts for, reverse keying applied."""
    total: Scale
    subscales: tuple[Scale, ...] = field(default=())
    canonical_base: str = CANONICAL_BASE
    """Base of the canonical URLs minted for it: its Questionnaire and code systems."""

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def link_ids(self) -> tuple[str, ...]:
        return tuple(item.linkId for item in self.definition.items)

    def enabled(self, licensed_groups: Iterable[str]) -> bool:
        group = self.definition.licence.licensed_group
        return group is None or group in set(licensed_groups)

    def score_range(self) -> tuple[float, float]:
        """The lowest and highest total the instrument can report."""
        return self.total.range()


def _resolve_scale(
    path: PurePath,
    where: str,
    scale_id: str,
    link_ids: list[str],
    method: Method,
    missing: MissingRule,
    decimals: int,
    bands: list[Band],
    table: dict[int, float] | None,
    scores: Mapping[str, Mapping[int, int]],
) -> Scale:
    def fail(message: str) -> InstrumentError:
        return InstrumentError(f"{path.name}: {where}: {message}")

    unknown = [link for link in link_ids if link not in scores]
    if unknown:
        raise fail(f"unknown items {unknown}")
    if len(set(link_ids)) != len(link_ids):
        raise fail("an item is listed twice")
    if missing.max_missing >= len(link_ids):
        raise fail("max_missing must leave at least one item")
    item_scores = [set(scores[link].values()) for link in link_ids]
    lows = {min(values) for values in item_scores}
    highs = {max(values) for values in item_scores}
    if method in (Method.MEAN, Method.TRANSFORM_0_100) and (len(lows) > 1 or len(highs) > 1):
        raise fail(f"{method.value} needs every item on the same range")
    if method is Method.DICHOTOMOUS_COUNT and not all(v <= {0, 1} for v in item_scores):
        raise fail("dichotomous-count needs every option to score 0 or 1")
    lowest = sum(min(v) for v in item_scores)
    highest = sum(max(v) for v in item_scores)
    if method is Method.LOOKUP_TABLE:
        if table is None:
            raise fail("lookup-table needs a table")
        if sorted(table) != list(range(lowest, highest + 1)):
            raise fail(f"table must have one row per raw score {lowest}..{highest}")
        if missing.max_missing != 0:
            raise fail("a lookup table needs every item answered")
    resolved_bands: list[tuple[Interval, Band]] = []
    for index, band in enumerate(bands):
        try:
            interval = Interval.parse(band.range)
        except ValueError as exc:
            raise fail(f"bands[{index}].range: {band.range!r} is not an interval") from exc
        resolved_bands.append((interval, band))
    if len({band.code for band in bands}) != len(bands):
        raise fail("band codes must be unique")
    scale = Scale(
        id=scale_id,
        link_ids=tuple(link_ids),
        method=method,
        missing=missing,
        decimals=decimals,
        bands=tuple(resolved_bands),
        item_min=min(lows),
        item_max=max(highs),
        raw_min=lowest,
        raw_max=highest,
        table=table,
    )
    if resolved_bands:
        _check_bands_cover(scale, fail)
    return scale


def _check_bands_cover(scale: Scale, fail: Callable[[str], InstrumentError]) -> None:
    """Every reportable value on the scale falls into exactly one band."""
    low, high = scale.range()
    step = 10.0**-scale.decimals
    probes: Iterable[float]
    if scale.table is not None:
        probes = scale.table.values()
    else:
        count = round((high - low) / step)
        probes = (round(low + i * step, scale.decimals) for i in range(count + 1))
    for value in probes:
        hits = [band.code for interval, band in scale.bands if value in interval]
        if len(hits) != 1:
            raise fail(
                f"score {value} falls in {len(hits)} bands {hits}; bands must tile the range"
            )


def _check_preambles(definition: Definition, fail: Callable[[str], InstrumentError]) -> None:
    """Each preamble opens one run of consecutive items, and its id (the linkId of its
    display item in the Questionnaire) is no item's linkId."""
    link_ids = {item.linkId for item in definition.items}
    used = {item.preamble for item in definition.items}
    for preamble_id in definition.preambles:
        if preamble_id in link_ids:
            raise fail(f"preambles.{preamble_id}: the id is also an item linkId")
        if preamble_id not in used:
            raise fail(f"preambles.{preamble_id}: no item shows it")
    finished: set[str] = set()
    previous: str | None = None
    for index, item in enumerate(definition.items):
        if item.preamble is not None and item.preamble not in definition.preambles:
            raise fail(f"items[{index}].preamble: no preamble named {item.preamble!r}")
        if item.preamble != previous:
            if item.preamble in finished:
                raise fail(f"items[{index}].preamble: items sharing a preamble must be consecutive")
            if previous is not None:
                finished.add(previous)
            previous = item.preamble


def build(
    definition: Definition, path: PurePath, canonical_base: str = CANONICAL_BASE
) -> Instrument:
    """Resolve a decoded definition into an :class:`Instrument`, or say what is wrong."""

    def fail(message: str) -> InstrumentError:
        return InstrumentError(f"{path.name}: {message}")

    if path.stem != definition.id:
        raise fail(f"id {definition.id!r} must match the file name")
    _check_preambles(definition, fail)
    change = definition.meaningful_change
    if isinstance(change, ReliableChangeIndex) and abs(change.value - change.computed()) > 0.005:
        raise fail(
            f"meaningful_change.value: {change.value} is not 1.96 x {change.sd} x sqrt(2) x "
            f"sqrt(1 - {change.reliability}) = {change.computed():.2f}"
        )
    options: dict[str, dict[int, AnswerOption]] = {}
    scores: dict[str, dict[int, int]] = {}
    for index, item in enumerate(definition.items):
        where = f"items[{index}]"
        if item.linkId in options:
            raise fail(f"{where}.linkId: {item.linkId!r} appears twice")
        option_set = definition.option_sets.get(item.options)
        if option_set is None:
            raise fail(f"{where}.options: no option set named {item.options!r}")
        by_value = {option.value: option for option in option_set}
        if len(by_value) != len(option_set):
            raise fail(f"option_sets.{item.options}: option values must be unique")
        counted = [o for o in option_set if not o.declined]
        values = [o.value if o.score is None else o.score for o in counted]
        if item.reverse and any(o.score is not None for o in counted):
            raise fail(f"{where}.reverse: an item with explicit option scores cannot be reversed")
        low, high = min(values), max(values)
        options[item.linkId] = by_value
        scores[item.linkId] = {
            o.value: (low + high - s) if item.reverse else s
            for o, s in zip(counted, values, strict=True)
        }
    scoring = definition.scoring
    errors = scoring.standard_errors
    if errors is not None and sorted(errors) != sorted(scoring.table or {}):
        raise fail("scoring.standard_errors must have the rows of scoring.table")
    total = _resolve_scale(
        path,
        "scoring",
        "total",
        scoring.items or [item.linkId for item in definition.items],
        scoring.method,
        scoring.missing,
        scoring.decimals,
        definition.bands,
        scoring.table,
        scores,
    )
    subscales = []
    for index, sub in enumerate(definition.subscales):
        subscales.append(
            _resolve_scale(
                path,
                f"subscales[{index}]",
                sub.id,
                sub.items,
                sub.method,
                sub.missing,
                sub.decimals,
                sub.bands,
                None,
                scores,
            )
        )
    if len({s.id for s in subscales}) != len(subscales):
        raise fail("subscale ids must be unique")
    return Instrument(
        definition=definition,
        options=options,
        scores=scores,
        total=total,
        subscales=tuple(subscales),
        canonical_base=canonical_base,
    )


def json_schema() -> dict[str, object]:
    """The JSON Schema of a definition file, generated from the Structs."""
    schema = msgspec.json.schema(Definition)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Belong instrument definition"
    return schema
