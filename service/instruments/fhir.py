"""Each instrument as an R4 Questionnaire."""

from __future__ import annotations

from service.fhir import CANONICAL_BASE
from service.fhir.types import AnswerOption, Coding, Extension, Questionnaire, QuestionnaireItem
from service.instruments.model import LOINC, Instrument
from service.instruments.model import AnswerOption as Option

ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"


def canonical_url(instrument_id: str) -> str:
    return f"{CANONICAL_BASE}/Questionnaire/{instrument_id}"


def answer_system(instrument_id: str) -> str:
    """Belong's code system for answers that have no LOINC answer code."""
    return f"{CANONICAL_BASE}/CodeSystem/{instrument_id}-answers"


def option_coding(instrument_id: str, option: Option) -> Coding:
    """An answer's coding: its LOINC answer code, else Belong's answer code system."""
    if option.code:
        return Coding(system=LOINC, code=option.code, display=option.display)
    return Coding(
        system=answer_system(instrument_id), code=str(option.value), display=option.display
    )


def answer_coding(instrument: Instrument, link_id: str, value: int) -> Coding:
    return option_coding(instrument.id, instrument.options[link_id][value])


def questionnaire(instrument: Instrument) -> Questionnaire:
    """The instrument's items in order, each block of items that shares a preamble opened by
    a display item (linkId = the preamble's id, prefix = its title); the answerable items
    keep their linkIds, so responses stay flat and read as before."""
    definition = instrument.definition
    items = []
    shown: str | None = None
    for item in definition.items:
        if item.preamble is not None and item.preamble != shown:
            preamble = definition.preambles[item.preamble]
            items.append(
                QuestionnaireItem(
                    linkId=item.preamble, prefix=preamble.title, type="display", text=preamble.text
                )
            )
        shown = item.preamble
        options = []
        for option in definition.option_sets[item.options]:
            coding = option_coding(definition.id, option)
            options.append(
                AnswerOption(
                    valueCoding=coding,
                    extension=[Extension(url=ORDINAL_VALUE, valueDecimal=option.value)],
                )
            )
        items.append(
            QuestionnaireItem(
                linkId=item.linkId,
                type="choice",
                text=item.text,
                code=[
                    Coding(system=item.code.system, code=item.code.code, display=item.code.display)
                ]
                if item.code
                else [],
                required=instrument.total.missing.max_missing == 0,
                answerOption=options,
            )
        )
    panel = definition.panel
    return Questionnaire(
        id=definition.id,
        url=canonical_url(definition.id),
        version=definition.version,
        name="".join(ch for ch in definition.short_title.title() if ch.isalnum()),
        title=definition.title,
        status="active",
        subjectType=["Patient"],
        publisher="Belong",
        description=definition.citation,
        copyright=definition.licence.note,
        code=[Coding(system=panel.system, code=panel.code, display=panel.display)] if panel else [],
        item=items,
    )
