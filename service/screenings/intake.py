"""Reading a received QuestionnaireResponse into instrument answers.

A response to one of Belong's Questionnaires is matched by its canonical URL and read by
linkId. A response to any other questionnaire (a PRAPARE or AHC HRSN form, say) is read
by LOINC item codes: an item counts when its linkId (or the last segment of a path-style
linkId, as LHC-Forms writes them) is the LOINC code of an instrument's item. Answers are
matched by their LOINC answer code, Belong's answer code, or the option's number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from service.instruments.fhir import answer_system, canonical_url
from service.instruments.model import LOINC, Instrument
from service.instruments.scoring import AnswerValue, Problem

FhirString = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]+$")]
"""R4 strings: at least one character, and no control characters but tab, CR and LF."""
JSON_WITHOUT_NUL = "#/components/schemas/JsonWithoutNul"
Json = Annotated[
    dict[str, Any],
    msgspec.Meta(extra_json_schema={"additionalProperties": {"$ref": JSON_WITHOUT_NUL}}),
]
"""A FHIR element Belong keeps but does not read (extensions, narrative, contained).
PostgreSQL cannot store NUL, so a NUL anywhere in one is refused (400)."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Base of the inbound shapes: an element R4 does not define is base-invalid (400).

    R4 JSON carries the id and extensions of a primitive element ``x`` under ``_x``; each
    shape declares ``_x`` beside every primitive it holds (and nowhere else)."""


class PrimitiveExtension(_Strict):
    """The ``_x`` of a primitive ``x``: an Element, only an id and extensions."""

    id: FhirString | None = None
    extension: list[Json] = []


PrimitiveExtensions = list[PrimitiveExtension | None]
"""The ``_x`` of a repeating primitive: one entry (or null) per value."""


class InboundCoding(_Strict):
    id: FhirString | None = None
    extension: list[Json] = []
    system: FhirString | None = None
    version: FhirString | None = None
    code: FhirString | None = None
    display: FhirString | None = None
    userSelected: bool | None = None
    _system: PrimitiveExtension | None = None
    _version: PrimitiveExtension | None = None
    _code: PrimitiveExtension | None = None
    _display: PrimitiveExtension | None = None
    _userSelected: PrimitiveExtension | None = None


class InboundIdentifier(_Strict):
    id: FhirString | None = None
    extension: list[Json] = []
    use: FhirString | None = None
    type: Json | None = None
    system: FhirString | None = None
    value: FhirString | None = None
    period: Json | None = None
    assigner: Json | None = None
    _use: PrimitiveExtension | None = None
    _system: PrimitiveExtension | None = None
    _value: PrimitiveExtension | None = None


class InboundReference(_Strict):
    id: FhirString | None = None
    extension: list[Json] = []
    reference: FhirString | None = None
    type: FhirString | None = None
    identifier: InboundIdentifier | None = None
    display: FhirString | None = None
    _reference: PrimitiveExtension | None = None
    _type: PrimitiveExtension | None = None
    _display: PrimitiveExtension | None = None


class InboundMeta(_Strict):
    id: FhirString | None = None
    extension: list[Json] = []
    versionId: FhirString | None = None
    lastUpdated: FhirString | None = None
    source: FhirString | None = None
    profile: list[FhirString] = []
    security: list[InboundCoding] = []
    tag: list[InboundCoding] = []
    _versionId: PrimitiveExtension | None = None
    _lastUpdated: PrimitiveExtension | None = None
    _source: PrimitiveExtension | None = None
    _profile: PrimitiveExtensions = []


VALUE_FIELDS = (
    "valueBoolean",
    "valueDecimal",
    "valueInteger",
    "valueDate",
    "valueDateTime",
    "valueTime",
    "valueString",
    "valueUri",
    "valueAttachment",
    "valueCoding",
    "valueQuantity",
    "valueReference",
)


class InboundAnswer(_Strict):
    id: FhirString | None = None
    extension: list[Json] = []
    modifierExtension: list[Json] = []
    valueBoolean: bool | None = None
    valueDecimal: float | None = None
    valueInteger: int | None = None
    valueDate: FhirString | None = None
    valueDateTime: FhirString | None = None
    valueTime: FhirString | None = None
    valueString: FhirString | None = None
    valueUri: FhirString | None = None
    valueAttachment: Json | None = None
    valueCoding: InboundCoding | None = None
    valueQuantity: Json | None = None
    valueReference: InboundReference | None = None
    item: list[InboundItem] = []
    _valueBoolean: PrimitiveExtension | None = None
    _valueDecimal: PrimitiveExtension | None = None
    _valueInteger: PrimitiveExtension | None = None
    _valueDate: PrimitiveExtension | None = None
    _valueDateTime: PrimitiveExtension | None = None
    _valueTime: PrimitiveExtension | None = None
    _valueString: PrimitiveExtension | None = None
    _valueUri: PrimitiveExtension | None = None

    def __post_init__(self) -> None:
        if sum(getattr(self, name) is not None for name in VALUE_FIELDS) > 1:
            raise ValueError("an answer has one value[x]")


class InboundItem(_Strict):
    linkId: FhirString
    id: FhirString | None = None
    extension: list[Json] = []
    modifierExtension: list[Json] = []
    definition: FhirString | None = None
    text: FhirString | None = None
    answer: list[InboundAnswer] = []
    item: list[InboundItem] = []
    _linkId: PrimitiveExtension | None = None
    _definition: PrimitiveExtension | None = None
    _text: PrimitiveExtension | None = None


class QuestionnaireResponseStatus(StrEnum):
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    AMENDED = "amended"
    ENTERED_IN_ERROR = "entered-in-error"
    STOPPED = "stopped"


class InboundQuestionnaireResponse(_Strict):
    resourceType: Literal["QuestionnaireResponse"]
    status: QuestionnaireResponseStatus
    id: FhirString | None = None
    meta: InboundMeta | None = None
    implicitRules: FhirString | None = None
    language: FhirString | None = None
    text: Json | None = None
    contained: list[Json] = []
    extension: list[Json] = []
    modifierExtension: list[Json] = []
    identifier: InboundIdentifier | None = None
    basedOn: list[InboundReference] = []
    partOf: list[InboundReference] = []
    questionnaire: FhirString | None = None
    subject: InboundReference | None = None
    encounter: InboundReference | None = None
    authored: FhirString | None = None
    author: InboundReference | None = None
    source: InboundReference | None = None
    item: list[InboundItem] = []
    _id: PrimitiveExtension | None = None
    _implicitRules: PrimitiveExtension | None = None
    _language: PrimitiveExtension | None = None
    _status: PrimitiveExtension | None = None
    _questionnaire: PrimitiveExtension | None = None
    _authored: PrimitiveExtension | None = None


@dataclass(frozen=True, slots=True)
class Picked:
    """The answers found for one instrument, keyed by its linkIds."""

    instrument: Instrument
    answers: list[tuple[str, AnswerValue]]
    problems: list[Problem] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)
    """linkId -> where its item stands in the resource, for error expressions."""


def _walk(items: Iterable[InboundItem], path: str) -> Iterator[tuple[str, InboundItem]]:
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        yield where, item
        yield from _walk(item.item, f"{where}.item")
        for a_index, answer in enumerate(item.answer):
            yield from _walk(answer.item, f"{where}.answer[{a_index}].item")


def _value(
    instrument: Instrument, link_id: str, answers: list[InboundAnswer], where: str
) -> tuple[AnswerValue, Problem | None]:
    if not answers:
        return None, None
    if len(answers) > 1:
        return None, Problem(f"{where}.answer", "one answer expected", "repeated_answer")
    answer = answers[0]
    options = instrument.options[link_id]
    if answer.valueCoding is not None:
        coding = answer.valueCoding
        for value, option in options.items():
            if coding.system == LOINC and option.code and coding.code == option.code:
                return value, None
            if coding.system == answer_system(instrument) and coding.code == str(value):
                return value, None
        return None, Problem(
            f"{where}.answer[0].valueCoding",
            f"{coding.system}|{coding.code} is not an answer to this item",
            "not_an_option",
        )
    if answer.valueInteger is not None:
        return answer.valueInteger, None
    return None, Problem(f"{where}.answer[0]", "expected valueCoding or valueInteger", "type")


def own_instrument(
    questionnaire: str | None, catalog: Mapping[str, Instrument]
) -> Instrument | None:
    """The instrument whose canonical URL the response cites, unversioned or as
    ``url|version`` with any version."""
    if not questionnaire:
        return None
    url = questionnaire.split("|", 1)[0]
    for instrument in catalog.values():
        if url == canonical_url(instrument):
            return instrument
    return None


def pick_own(instrument: Instrument, qr: InboundQuestionnaireResponse) -> Picked:
    answers: list[tuple[str, AnswerValue]] = []
    problems: list[Problem] = []
    locations: dict[str, str] = {}
    for where, item in _walk(qr.item, "QuestionnaireResponse.item"):
        if item.linkId not in instrument.options:
            if item.answer:
                problems.append(
                    Problem(
                        f"{where}.linkId",
                        f"no item {item.linkId!r} in {instrument.id}",
                        "unknown_item",
                    )
                )
            continue
        value, problem = _value(instrument, item.linkId, item.answer, where)
        if problem is not None:
            problems.append(problem)
        answers.append((item.linkId, value))
        locations.setdefault(item.linkId, where)
    return Picked(instrument, answers, problems, locations)


def pick_by_loinc(qr: InboundQuestionnaireResponse, catalog: Iterable[Instrument]) -> list[Picked]:
    """The instruments whose items are present, with the answers found.

    Instruments can share LOINC item codes (a short form reuses its parent's items): of
    those that share a code with one another, only the best filled is kept — the most items
    answered, then the largest share of its items — so one answer is never scored twice."""
    by_code: dict[str, list[tuple[Instrument, str]]] = {}
    for instrument in catalog:
        for coded in instrument.definition.items:
            if coded.code is not None and coded.code.system == LOINC:
                by_code.setdefault(coded.code.code, []).append((instrument, coded.linkId))
    found: dict[str, Picked] = {}
    codes: dict[str, set[str]] = {}
    for where, item in _walk(qr.item, "QuestionnaireResponse.item"):
        candidates = (item.linkId, item.linkId.rstrip("/").rsplit("/", 1)[-1])
        code = next((c for c in candidates if c in by_code), None)
        if code is None:
            continue
        for instrument, link_id in by_code[code]:
            picked = found.setdefault(instrument.id, Picked(instrument, []))
            codes.setdefault(instrument.id, set()).add(code)
            value, problem = _value(instrument, link_id, item.answer, where)
            if problem is not None:
                picked.problems.append(problem)
            picked.answers.append((link_id, value))
            picked.locations.setdefault(link_id, where)

    def filled(picked: Picked) -> tuple[int, float]:
        answered = sum(value is not None for _, value in picked.answers)
        return answered, answered / len(picked.instrument.definition.items)

    kept: set[str] = set()
    claimed: set[str] = set()
    for picked in sorted(found.values(), key=filled, reverse=True):
        if codes[picked.instrument.id].isdisjoint(claimed):
            kept.add(picked.instrument.id)
            claimed |= codes[picked.instrument.id]
    return [picked for instrument_id, picked in found.items() if instrument_id in kept]


def patient_id_of(reference: InboundReference | None) -> str | None:
    if reference is None or not reference.reference:
        return None
    kind, _, ident = reference.reference.rstrip("/").rpartition("/")
    if not kind.endswith("Patient"):
        return None
    return ident or None


def contains_nul(value: Any, path: str) -> str | None:
    """The path of the first string holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return f"{path}.{key!r}"
            found = contains_nul(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = contains_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None
