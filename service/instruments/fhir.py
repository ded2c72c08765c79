"""Each instrument as an R4 Questionnaire."""

from __future__ import annotations

import re

from service.fhir.types import AnswerOption, Coding, Extension, Questionnaire, QuestionnaireItem
from service.instruments.model import LOINC, Instrument
from service.instruments.model import AnswerOption as Option

ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
_NOT_IN_VERSION = re.compile(r"[^a-z0-9.]+")


def canonical_url(instrument: Instrument) -> str:
    return f"{instrument.canonical_base}/Questionnaire/{instrument.id}"


def fhir_version(instrument: Instrument) -> str:
    """The Questionnaire's business version: the instrument's version as a slug
    ("Russell 1996 (Version 3)" -> "russell-1996-version-3"), so that ``url|version`` is a
    valid canonical (no spaces, no ``|``)."""
    return _NOT_IN_VERSION.sub("-", instrument.definition.version.lower()).strip("-.")


def answer_system(instrument: Instrument) -> str:
    """Belong's code system for answers that have no LOINC answer code."""
    return f"{instrument.canonical_base}/CodeSystem/{instrument.id}-answers"


def option_coding(instrument: Instrument, option: Option) -> Coding:
    """An answer's coding: its LOINC answer code, else Belong's answer code system."""
    if option.code:
        return Coding(system=LOINC, code=option.code, display=option.display)
    return Coding(system=answer_system(instrument), code=str(option.value), display=option.display)


def answer_coding(instrument: Instrument, link_id: str, value: int) -> Coding:
    return option_coding(instrument, instrument.options[link_id][value])


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
            coding = option_coding(instrument, option)
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
        url=canonical_url(instrument),
        version=fhir_version(instrument),
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


def cites(instrument: Instrument, canonical: str) -> bool:
    """Whether ``canonical`` (``url`` or ``url|version``) names the instrument's Questionnaire:
    the url exactly, and the version, when given, its :func:`fhir_version`."""
    url, bar, version = canonical.partition("|")
    return url == canonical_url(instrument) and (not bar or version == fhir_version(instrument))


def coded(instrument: Instrument, system: str | None, code: str) -> bool:
    """Whether the Questionnaire (its panel code) or one of its items carries the code; a
    system of None is any system (a bare code), "" none (``|code``)."""
    codings = [instrument.definition.panel, *(item.code for item in instrument.definition.items)]
    return any(
        coding is not None and coding.code == code and (system is None or coding.system == system)
        for coding in codings
    )
