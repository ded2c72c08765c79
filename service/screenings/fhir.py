"""A scored screening as FHIR: the QuestionnaireResponse and its Observations.

Observations follow SDOHCC-ObservationScreeningResponse: categories survey + sdoh +
social-connection; one per answered item (derivedFrom the QuestionnaireResponse, performer
the patient), one per total and subscale (derivedFrom the QuestionnaireResponse and the
item Observations, no performer, interpretation POS/NEG where a band applies), and a panel
Observation (hasMember) where the instrument has a LOINC panel code. The profile is claimed
only where the Observation's code is LOINC, as its required binding demands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.fhir.types import (
    CodeableConcept,
    Identifier,
    Meta,
    Observation,
    Quantity,
    QuestionnaireResponse,
    QuestionnaireResponseAnswer,
    QuestionnaireResponseItem,
    Reference,
)
from service.fhir.types import Coding as FhirCoding
from service.instruments.fhir import answer_coding, canonical_url
from service.instruments.model import LOINC, Coding, Instrument
from service.instruments.scoring import BandResult, Score

SDOHCC_SCREENING_RESPONSE = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
    "SDOHCC-ObservationScreeningResponse"
)
CATEGORIES = (
    CodeableConcept(
        coding=[
            FhirCoding(
                system="http://terminology.hl7.org/CodeSystem/observation-category",
                code="survey",
                display="Survey",
            )
        ]
    ),
    CodeableConcept(
        coding=[
            FhirCoding(
                system="http://hl7.org/fhir/us/core/CodeSystem/us-core-category",
                code="sdoh",
                display="SDOH",
            )
        ]
    ),
    CodeableConcept(
        coding=[
            FhirCoding(
                system="http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
                code="social-connection",
                display="Social Connection",
            )
        ]
    ),
)
CATEGORY_CODES = {c.coding[0].code: c.coding[0].system for c in CATEGORIES if c.coding[0].code}
"""Category code -> its system, for token search."""
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
UCUM = "http://unitsofmeasure.org"


def fhir_instant(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def local_system(instrument: Instrument) -> str:
    """Belong's code system for an instrument's items and scores without LOINC codes."""
    return f"{instrument.canonical_base}/CodeSystem/{instrument.id}"


@dataclass(frozen=True, slots=True)
class StoredObservation:
    """An Observation with the columns it is indexed by."""

    id: str
    code_system: str
    code: str
    resource: Observation


@dataclass(frozen=True, slots=True)
class ScreeningContext:
    screening_id: str
    questionnaire_response_id: str
    patient_id: str
    completed_at: datetime
    recorded_at: datetime
    encounter_id: str | None = None
    by_patient: bool = False
    """The patient answered themselves: they are the QuestionnaireResponse's author and
    source (else the response names neither: the clinic's system sent it)."""


def _concept(
    coding: Coding | None, fallback_system: str, fallback_code: str, text: str
) -> tuple[CodeableConcept, str, str]:
    if coding is not None:
        concept = CodeableConcept(
            coding=[FhirCoding(system=coding.system, code=coding.code, display=coding.display)],
            text=text,
        )
        return concept, coding.system, coding.code
    concept = CodeableConcept(
        coding=[FhirCoding(system=fallback_system, code=fallback_code, display=text)], text=text
    )
    return concept, fallback_system, fallback_code


def _interpretation(band: BandResult | None) -> list[CodeableConcept]:
    if band is None:
        return []
    code, display = ("POS", "Positive") if band.positive else ("NEG", "Negative")
    return [
        CodeableConcept(
            coding=[FhirCoding(system=INTERPRETATION, code=code, display=display)],
            text=f"{band.label} ({band.provenance} cut-off)",
        )
    ]


def _stored(observation: Observation, system: str, code: str) -> StoredObservation:
    assert observation.id is not None
    return StoredObservation(
        id=observation.id,
        code_system=system,
        code=code,
        resource=observation,
    )


def questionnaire_response(
    instrument: Instrument,
    answers: dict[str, int],
    ctx: ScreeningContext,
    identifier: Identifier | None = None,
) -> QuestionnaireResponse:
    """The QuestionnaireResponse Belong builds for answers posted to /v1/screenings."""
    items = []
    for item in instrument.definition.items:
        value = answers.get(item.linkId)
        answer = (
            [QuestionnaireResponseAnswer(valueCoding=answer_coding(instrument, item.linkId, value))]
            if value is not None
            else []
        )
        items.append(QuestionnaireResponseItem(linkId=item.linkId, text=item.text, answer=answer))
    return QuestionnaireResponse(
        id=ctx.questionnaire_response_id,
        meta=Meta(lastUpdated=fhir_instant(ctx.recorded_at)),
        identifier=identifier,
        questionnaire=canonical_url(instrument),
        status="completed",
        subject=Reference(reference=f"Patient/{ctx.patient_id}"),
        encounter=Reference(reference=f"Encounter/{ctx.encounter_id}")
        if ctx.encounter_id
        else None,
        authored=fhir_instant(ctx.completed_at),
        author=Reference(reference=f"Patient/{ctx.patient_id}") if ctx.by_patient else None,
        source=Reference(reference=f"Patient/{ctx.patient_id}") if ctx.by_patient else None,
        item=items,
    )


def observations(
    instrument: Instrument, answers: dict[str, int], score: Score, ctx: ScreeningContext
) -> list[StoredObservation]:
    definition = instrument.definition
    patient = Reference(reference=f"Patient/{ctx.patient_id}")
    encounter = Reference(reference=f"Encounter/{ctx.encounter_id}") if ctx.encounter_id else None
    qr = Reference(reference=f"QuestionnaireResponse/{ctx.questionnaire_response_id}")
    common: dict[str, Any] = {
        "status": "final",
        "category": list(CATEGORIES),
        "subject": patient,
        "encounter": encounter,
        "effectiveDateTime": fhir_instant(ctx.completed_at),
        "issued": fhir_instant(ctx.recorded_at),
    }
    system = local_system(instrument)
    stored: list[StoredObservation] = []
    item_refs: dict[str, Reference] = {}

    def meta(code_system: str) -> Meta:
        profiles = [SDOHCC_SCREENING_RESPONSE] if code_system == LOINC else []
        return Meta(profile=profiles, versionId="1", lastUpdated=fhir_instant(ctx.recorded_at))

    for index, item in enumerate(definition.items, start=1):
        value = answers.get(item.linkId)
        if value is None:
            continue
        observation_id = f"{ctx.screening_id}-i{index}"
        code, code_system, code_value = _concept(item.code, system, item.linkId, item.text)
        observation = Observation(
            id=observation_id,
            meta=meta(code_system),
            code=code,
            performer=[patient],
            valueCodeableConcept=CodeableConcept(
                coding=[answer_coding(instrument, item.linkId, value)],
                text=instrument.options[item.linkId][value].display,
            ),
            derivedFrom=[qr],
            **common,
        )
        item_refs[item.linkId] = Reference(reference=f"Observation/{observation_id}")
        stored.append(_stored(observation, code_system, code_value))

    def score_observation(
        suffix: str,
        coding: Coding | None,
        local_code: str,
        title: str,
        value: float,
        band: BandResult | None,
        link_ids: tuple[str, ...],
    ) -> StoredObservation:
        code, code_system, code_value = _concept(coding, system, local_code, title)
        observation = Observation(
            id=f"{ctx.screening_id}-{suffix}",
            meta=meta(code_system),
            code=code,
            valueQuantity=Quantity(
                value=value,
                unit=definition.scoring.unit,
                system=UCUM,
                code=definition.scoring.unit,
            ),
            interpretation=_interpretation(band),
            derivedFrom=[qr, *(item_refs[link] for link in link_ids if link in item_refs)],
            **common,
        )
        return _stored(observation, code_system, code_value)

    members: list[StoredObservation] = list(stored)
    if score.total is not None:
        total = score_observation(
            "total",
            definition.scoring.code,
            "total",
            f"{definition.short_title} score",
            score.total,
            score.band,
            instrument.total.link_ids,
        )
        stored.append(total)
        members.append(total)
    for index, (sub, scale) in enumerate(
        zip(definition.subscales, instrument.subscales, strict=True), start=1
    ):
        value = score.subscales.get(sub.id)
        if value is None:
            continue
        observation = score_observation(
            f"s{index}",
            sub.code,
            sub.id,
            f"{definition.short_title} {sub.title} subscale",
            value,
            score.subscale_bands.get(sub.id),
            scale.link_ids,
        )
        stored.append(observation)
        members.append(observation)
    if definition.panel is not None:
        panel = definition.panel
        observation = Observation(
            id=f"{ctx.screening_id}-panel",
            meta=meta(panel.system),
            code=CodeableConcept(
                coding=[FhirCoding(system=panel.system, code=panel.code, display=panel.display)],
                text=definition.title,
            ),
            hasMember=[Reference(reference=f"Observation/{m.id}") for m in members],
            derivedFrom=[qr],
            **common,
        )
        stored.append(_stored(observation, panel.system, panel.code))
    return stored
