"""The FHIR R4 datatypes and resources Belong emits, as msgspec Structs.

Only the elements Belong fills are declared; ``omit_defaults`` keeps absent elements out
of the JSON, as FHIR requires (no nulls, no empty arrays).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec


class Element(msgspec.Struct, omit_defaults=True, frozen=True, kw_only=True):
    """Required elements have no default, so ``omit_defaults`` never drops them."""

    pass


class Coding(Element, kw_only=True):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(Element, kw_only=True):
    coding: list[Coding] = []
    text: str | None = None


class Extension(Element, kw_only=True):
    url: str
    valueDecimal: float | None = None
    valueCode: str | None = None
    valueBoolean: bool | None = None
    valueInteger: int | None = None


class ContactPoint(Element, kw_only=True):
    system: str
    value: str


class Annotation(Element, kw_only=True):
    authorReference: Reference | None = None
    text: str
    time: str | None = None


class Reference(Element, kw_only=True):
    reference: str | None = None
    display: str | None = None


class Meta(Element, kw_only=True):
    profile: list[str] = []
    versionId: str | None = None
    lastUpdated: str | None = None


class Identifier(Element, kw_only=True):
    system: str | None = None
    value: str | None = None


class Quantity(Element, kw_only=True):
    value: float
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class AnswerOption(Element, kw_only=True):
    valueCoding: Coding
    extension: list[Extension] = []


class QuestionnaireItem(Element, kw_only=True):
    linkId: str
    prefix: str | None = None
    type: str
    text: str | None = None
    code: list[Coding] = []
    required: bool | None = None
    answerOption: list[AnswerOption] = []


class Resource(Element, tag_field="resourceType", kw_only=True):
    id: str | None = None
    meta: Meta | None = None


class Questionnaire(Resource, tag="Questionnaire", kw_only=True):
    url: str | None = None
    version: str | None = None
    name: str | None = None
    title: str | None = None
    status: str
    subjectType: list[str] = []
    publisher: str | None = None
    description: str | None = None
    copyright: str | None = None
    code: list[Coding] = []
    item: list[QuestionnaireItem] = []


class QuestionnaireResponseAnswer(Element, kw_only=True):
    valueCoding: Coding | None = None
    valueInteger: int | None = None


class QuestionnaireResponseItem(Element, kw_only=True):
    linkId: str
    text: str | None = None
    answer: list[QuestionnaireResponseAnswer] = []


class QuestionnaireResponse(Resource, tag="QuestionnaireResponse", kw_only=True):
    identifier: Identifier | None = None
    questionnaire: str | None = None
    status: str
    subject: Reference | None = None
    encounter: Reference | None = None
    authored: str | None = None
    author: Reference | None = None
    source: Reference | None = None
    item: list[QuestionnaireResponseItem] = []


class Observation(Resource, tag="Observation", kw_only=True):
    status: str
    category: list[CodeableConcept] = []
    code: CodeableConcept
    subject: Reference | None = None
    encounter: Reference | None = None
    effectiveDateTime: str | None = None
    issued: str | None = None
    performer: list[Reference] = []
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    interpretation: list[CodeableConcept] = []
    derivedFrom: list[Reference] = []
    hasMember: list[Reference] = []


class HealthcareService(Resource, tag="HealthcareService", kw_only=True):
    extension: list[Extension] = []
    identifier: list[Identifier] = []
    active: bool
    providedBy: Reference | None = None
    category: list[CodeableConcept] = []
    type: list[CodeableConcept] = []
    name: str
    comment: str | None = None
    telecom: list[ContactPoint] = []
    characteristic: list[CodeableConcept] = []
    communication: list[CodeableConcept] = []
    referralMethod: list[CodeableConcept] = []
    availabilityExceptions: str | None = None


class Organization(Resource, tag="Organization", kw_only=True):
    active: bool
    type: list[CodeableConcept] = []
    name: str


class ServiceRequest(Resource, tag="ServiceRequest", kw_only=True):
    status: str
    intent: str
    category: list[CodeableConcept] = []
    priority: str | None = None
    code: CodeableConcept
    subject: Reference
    authoredOn: str | None = None
    requester: Reference | None = None
    performer: list[Reference] = []
    reasonCode: list[CodeableConcept] = []
    reasonReference: list[Reference] = []
    note: list[Annotation] = []


class TaskOutput(Element, kw_only=True):
    type: CodeableConcept
    valueCodeableConcept: CodeableConcept


class Task(Resource, tag="Task", kw_only=True):
    status: str
    statusReason: CodeableConcept | None = None
    intent: str
    priority: str | None = None
    code: CodeableConcept
    focus: Reference
    for_: Reference = msgspec.field(name="for")
    authoredOn: str
    lastModified: str | None = None
    requester: Reference
    owner: Reference | None = None
    note: list[Annotation] = []
    output: list[TaskOutput] = []


class BundleLink(Element, kw_only=True):
    relation: str
    url: str


class BundleSearch(Element, kw_only=True):
    mode: str


class BundleEntry(Element, kw_only=True):
    fullUrl: str | None = None
    resource: Resource | None = None
    search: BundleSearch | None = None


class Bundle(Resource, tag="Bundle", kw_only=True):
    type: str
    total: int | None = None
    link: list[BundleLink] = []
    entry: list[BundleEntry] = []


class OperationOutcomeIssue(Element, kw_only=True):
    severity: str
    code: str
    diagnostics: str | None = None
    expression: list[str] = []


class OperationOutcome(Resource, tag="OperationOutcome", kw_only=True):
    issue: list[OperationOutcomeIssue] = []


class StoredJson(NamedTuple):
    """A stored resource as its JSON text, to be written into a response unparsed."""

    id: str
    json: msgspec.Raw
