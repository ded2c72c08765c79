"""The instrument catalog and stateless scoring."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK

from service.instruments.controllers.params import InstrumentId
from service.instruments.fhir import canonical_url
from service.instruments.model import (
    Band,
    Coding,
    Instrument,
    MeaningfulChange,
    MissingRule,
    Source,
)
from service.instruments.scoring import Score
from service.instruments.service import Answers, Catalog, Unscorable, score_answers
from service.platform.auth import PUBLIC, scoped
from service.platform.body import decode
from service.platform.documented import documented
from service.platform.errors import ApiError


class InstrumentSummary(msgspec.Struct):
    id: str
    title: str
    short_title: str
    construct: str
    direction: str
    item_count: int
    licence: str
    free_use: bool
    enabled: bool


class OptionView(msgspec.Struct, omit_defaults=True):
    value: int
    display: str
    code: str | None = None
    declined: bool = False


class CodingView(msgspec.Struct):
    system: str
    code: str
    display: str


class PreambleView(msgspec.Struct):
    id: str
    title: str
    text: str


class ItemView(msgspec.Struct, omit_defaults=True):
    linkId: str
    text: str
    options: list[OptionView]
    code: CodingView | None = None
    reverse: bool = False
    preamble: PreambleView | None = None
    """Text shown before the item's block (such as who counts as family), part of how the
    item is presented."""
    wording_source: str | None = None
    """Where the item text comes from, where copies of the instrument word it differently."""


class MissingView(msgspec.Struct):
    max_missing: int
    rule: str
    provenance: str
    source: str


class BandView(msgspec.Struct, omit_defaults=True):
    range: str
    code: str
    label: str
    positive: bool
    severity: str
    provenance: str
    source: str
    signal: str | None = None


class ScaleView(msgspec.Struct, omit_defaults=True):
    id: str
    title: str
    method: str
    items: list[str]
    missing: MissingView
    range: tuple[float, float]
    code: CodingView | None = None
    bands: list[BandView] = []


class LicenceView(msgspec.Struct, omit_defaults=True):
    note: str
    free_use: bool
    licensed_group: str | None = None


class InstrumentDetail(msgspec.Struct, omit_defaults=True):
    id: str
    title: str
    short_title: str
    version: str
    construct: str
    direction: str
    citation: str
    licence: LicenceView
    enabled: bool
    items: list[ItemView]
    scoring: ScaleView
    subscales: list[ScaleView]
    sources: list[Source]
    questionnaire: str
    """Canonical URL of the matching FHIR Questionnaire."""
    meaningful_change: MeaningfulChange
    """The change in the total that the history calls better or worse: a minimal important
    difference (mid), a reliable change index (rci), or none, with the reason."""
    panel: CodingView | None = None
    notes: list[str] = []


class ScoreRequest(msgspec.Struct, forbid_unknown_fields=True):
    answers: Annotated[
        Answers,
        msgspec.Meta(
            description=(
                'Answers by linkId with the option value as published, e.g. {"1": 2, "2": 3}; '
                "or a list of {linkId, value}. null marks an item left unanswered."
            )
        ),
    ]


def _coding(coding: Coding | None) -> CodingView | None:
    if coding is None:
        return None
    return CodingView(system=coding.system, code=coding.code, display=coding.display)


def _missing(rule: MissingRule) -> MissingView:
    return MissingView(
        max_missing=rule.max_missing,
        rule=rule.rule,
        provenance=rule.provenance.value,
        source=rule.source,
    )


def _bands(bands: list[Band]) -> list[BandView]:
    return [
        BandView(
            range=b.range,
            code=b.code,
            label=b.label,
            positive=b.positive,
            severity=b.severity.value,
            provenance=b.provenance.value,
            source=b.source,
            signal=b.signal.value if b.signal else None,
        )
        for b in bands
    ]


def summary(catalog: NamedDependency[Catalog], instrument: Instrument) -> InstrumentSummary:
    d = instrument.definition
    return InstrumentSummary(
        id=d.id,
        title=d.title,
        short_title=d.short_title,
        construct=d.construct.value,
        direction=d.direction.value,
        item_count=len(d.items),
        licence=d.licence.note,
        free_use=d.licence.free_use,
        enabled=catalog.enabled(instrument),
    )


def detail(catalog: NamedDependency[Catalog], instrument: Instrument) -> InstrumentDetail:
    d = instrument.definition
    total = ScaleView(
        id="total",
        title=d.short_title,
        method=d.scoring.method.value,
        items=list(instrument.total.link_ids),
        missing=_missing(d.scoring.missing),
        range=instrument.total.range(),
        code=_coding(d.scoring.code),
        bands=_bands(d.bands),
    )
    subscales = [
        ScaleView(
            id=s.id,
            title=s.title,
            method=s.method.value,
            items=list(s.items),
            missing=_missing(s.missing),
            range=scale.range(),
            code=_coding(s.code),
            bands=_bands(s.bands),
        )
        for s, scale in zip(d.subscales, instrument.subscales, strict=True)
    ]
    preambles = {
        preamble_id: PreambleView(id=preamble_id, title=preamble.title, text=preamble.text)
        for preamble_id, preamble in d.preambles.items()
    }
    items = [
        ItemView(
            linkId=item.linkId,
            text=item.text,
            code=_coding(item.code),
            reverse=item.reverse,
            preamble=preambles[item.preamble] if item.preamble else None,
            wording_source=item.wording_source,
            options=[
                OptionView(value=o.value, display=o.display, code=o.code, declined=o.declined)
                for o in d.option_sets[item.options]
            ],
        )
        for item in d.items
    ]
    return InstrumentDetail(
        id=d.id,
        title=d.title,
        short_title=d.short_title,
        version=d.version,
        construct=d.construct.value,
        direction=d.direction.value,
        citation=d.citation.strip(),
        licence=LicenceView(
            note=d.licence.note,
            free_use=d.licence.free_use,
            licensed_group=d.licence.licensed_group,
        ),
        enabled=catalog.enabled(instrument),
        items=items,
        scoring=total,
        subscales=subscales,
        sources=list(d.sources),
        questionnaire=canonical_url(instrument),
        meaningful_change=d.meaningful_change,
        panel=_coding(d.panel),
        notes=list(d.notes),
    )


class InstrumentController(Controller):
    path = "/v1/instruments"
    tags = ["instruments"]

    @get(operation_id="list_instruments", summary="The instrument catalog", opt=PUBLIC)
    async def list_instruments(self, catalog: NamedDependency[Catalog]) -> list[InstrumentSummary]:
        return [summary(catalog, i) for i in catalog.instruments.values()]

    @get(
        "/{instrument_id:str}",
        operation_id="get_instrument",
        opt=PUBLIC,
        summary="One instrument: items in order with options, scoring, bands and sources",
    )
    async def get_instrument(
        self, catalog: NamedDependency[Catalog], instrument_id: InstrumentId
    ) -> InstrumentDetail:
        return detail(catalog, catalog.get(instrument_id))

    @post(
        "/{instrument_id:str}/score",
        operation_id="score_answers",
        opt={
            **scoped("screenings:write"),
            **documented(
                errors={403, 422},
                request=ScoreRequest,
                example={"answers": {"1": 2, "2": 3, "3": 2}},
            ),
        },
        status_code=HTTP_200_OK,
        summary="Score a set of answers; nothing is stored",
    )
    async def score(
        self,
        request: Request[Any, Any, Any],
        catalog: NamedDependency[Catalog],
        instrument_id: InstrumentId,
    ) -> Score:
        data = await decode(request, ScoreRequest)
        try:
            return score_answers(catalog.usable(instrument_id), data.answers)[1]
        except Unscorable as exc:
            raise ApiError(422, exc.detail, exc.problems) from exc
