"""Referrals as FHIR: SDOHCC-ServiceRequest (the order) and SDOHCC-TaskForReferralManagement
(its fulfilment, which the service's side moves along).

A ServiceRequest code is SNOMED CT where a code is confirmed (support groups 711281004,
mental health counselling 306226009) and the Belong service category otherwise. Both name
the referring clinic as ``requester``: an Organization served at /fhir/Organization/{id}.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.directory.fhir import SDOHCC, SDOHCC_CODES, SOCIAL_CONNECTION, category_coding
from service.directory.model import Category, DirectoryService
from service.fhir import CANONICAL_BASE
from service.fhir.types import (
    Annotation,
    CodeableConcept,
    Coding,
    Meta,
    Organization,
    Reference,
    ServiceRequest,
    Task,
    TaskOutput,
)
from service.matching.service import ServiceSummary
from service.patients.model import SNOMED
from service.referrals.model import STATUS_REASON_WORDS, Status, reason_code
from service.screenings.fhir import fhir_instant

STATUS_REASON_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/referral-status-reason"
"""Belong's codes for why a referral was declined or failed (model.StatusReason)."""
RESULTING_ACTIVITY = CodeableConcept(
    coding=[Coding(system=SDOHCC_CODES, code="resulting-activity")]
)
"""Task.output type of SDOHCC-TaskForReferralManagement: what the referral led to."""
REFERRAL_CODE = {
    Category.SUPPORT_GROUP: Coding(
        system=SNOMED, code="711281004", display="Referral to support group"
    ),
    Category.COUNSELLING: Coding(
        system=SNOMED, code="306226009", display="Referral to mental health counseling service"
    ),
}
PROVIDER = CodeableConcept(
    coding=[
        Coding(
            system="http://terminology.hl7.org/CodeSystem/organization-type",
            code="prov",
            display="Healthcare Provider",
        )
    ]
)
SERVICE_REQUEST_CATEGORIES = (
    Coding(system=SNOMED, code="410606002", display="Social service procedure"),
    SOCIAL_CONNECTION,
)
"""Every referral's ServiceRequest.category, one coding to a concept."""
REFERRAL_CATEGORIES = [CodeableConcept(coding=[coding]) for coding in SERVICE_REQUEST_CATEGORIES]
SERVICE_REQUEST_STATUS = {
    Status.REQUESTED: "active",
    Status.ACCEPTED: "active",
    Status.IN_PROGRESS: "active",
    Status.ON_HOLD: "on-hold",
    Status.COMPLETED: "completed",
    Status.REJECTED: "revoked",
    Status.CANCELLED: "revoked",
    Status.FAILED: "revoked",
}


@dataclass(frozen=True, slots=True)
class ReferralFacts:
    id: str
    patient_id: str
    clinic_id: str
    clinic_name: str
    service: DirectoryService
    status: Status
    status_reason: str | None
    note: str | None
    screening_id: str | None
    consent_text: str
    created_at: datetime
    updated_at: datetime
    outcome: str | None = None
    service_steps: tuple[ServiceStep, ...] = ()
    """The steps the service took through its inbox, oldest first."""


@dataclass(frozen=True, slots=True)
class ServiceStep:
    from_status: Status
    to_status: Status
    reason: str | None
    recorded_at: datetime


def step_note(service: DirectoryService, step: ServiceStep) -> Annotation:
    """A step the service took through its inbox, as a Task note authored by the service."""
    text = f"{step.from_status.value} -> {step.to_status.value}, by the service through its inbox"
    if step.reason:
        text += f": {step.reason}"
    return Annotation(
        authorReference=Reference(
            reference=f"HealthcareService/{service.id}", display=service.name
        ),
        text=text,
        time=fhir_instant(step.recorded_at),
    )


def referral_coding(category: Category) -> Coding:
    """The code of a referral to a service of ``category``: stored ServiceRequests and the
    drafts CDS Hooks cards suggest carry the same."""
    return REFERRAL_CODE.get(category) or category_coding(category)


def organization(clinic_id: str, clinic_name: str) -> Organization:
    """The clinic as the Organization its referrals name as requester."""
    return Organization(id=clinic_id, active=True, type=[PROVIDER], name=clinic_name)


def requester(clinic_id: str, clinic_name: str, base: str = "") -> Reference:
    """The reference to the clinic's Organization; relative unless given the public ``base``
    (``https://host``) to make it absolute."""
    prefix = f"{base}/fhir/" if base else ""
    return Reference(reference=f"{prefix}Organization/{clinic_id}", display=clinic_name)


def service_request(r: ReferralFacts) -> ServiceRequest:
    coding = referral_coding(r.service.category)
    notes = [Annotation(text=r.consent_text)]
    if r.note:
        notes.append(Annotation(text=r.note))
    return ServiceRequest(
        id=r.id,
        meta=Meta(
            profile=[f"{SDOHCC}/StructureDefinition/SDOHCC-ServiceRequest"],
            lastUpdated=fhir_instant(r.updated_at),
        ),
        status=SERVICE_REQUEST_STATUS[r.status],
        intent="order",
        category=REFERRAL_CATEGORIES,
        priority="routine",
        code=CodeableConcept(coding=[coding], text=f"Referral to {r.service.name}"),
        subject=Reference(reference=f"Patient/{r.patient_id}"),
        authoredOn=fhir_instant(r.created_at),
        requester=requester(r.clinic_id, r.clinic_name),
        performer=[
            Reference(reference=f"HealthcareService/{r.service.id}", display=r.service.name)
        ],
        reasonReference=[Reference(reference=f"Observation/{r.screening_id}-total")]
        if r.screening_id
        else [],
        note=notes,
    )


def draft_service_request(
    base: str,
    patient_id: str,
    service: ServiceSummary,
    reason: str,
    screening_id: str,
    requester: Reference,
) -> ServiceRequest:
    """The draft referral a CDS Hooks card suggests, coded and categorised as a stored one.
    What Belong serves (the service, the screening's score, the ``requester``) is referenced
    absolutely under the public ``base``, so that the EHR creating the draft can resolve it;
    the subject stays the EHR's own ``Patient/{id}`` from the hook context."""
    return ServiceRequest(
        status="draft",
        intent="order",
        category=REFERRAL_CATEGORIES,
        priority="routine",
        code=CodeableConcept(
            coding=[referral_coding(service.category)], text=f"Referral to {service.name}"
        ),
        subject=Reference(reference=f"Patient/{patient_id}"),
        requester=requester,
        performer=[
            Reference(reference=f"{base}/fhir/HealthcareService/{service.id}", display=service.name)
        ],
        reasonCode=[CodeableConcept(text=reason)],
        reasonReference=[Reference(reference=f"{base}/fhir/Observation/{screening_id}-total")],
    )


def status_reason(text: str) -> CodeableConcept:
    """The Task's statusReason: the stored words, coded when they start with one of
    Belong's reasons (as the inbox's forms write them)."""
    code = reason_code(text)
    if code is None:
        return CodeableConcept(text=text)
    coding = Coding(system=STATUS_REASON_SYSTEM, code=code.value, display=STATUS_REASON_WORDS[code])
    return CodeableConcept(coding=[coding], text=text)


def task(r: ReferralFacts) -> Task:
    return Task(
        id=r.id,
        meta=Meta(
            profile=[f"{SDOHCC}/StructureDefinition/SDOHCC-TaskForReferralManagement"],
            lastUpdated=fhir_instant(r.updated_at),
        ),
        status=r.status.value,
        statusReason=status_reason(r.status_reason) if r.status_reason else None,
        intent="order",
        priority="routine",
        code=CodeableConcept(
            coding=[Coding(system="http://hl7.org/fhir/CodeSystem/task-code", code="fulfill")]
        ),
        focus=Reference(reference=f"ServiceRequest/{r.id}"),
        for_=Reference(reference=f"Patient/{r.patient_id}"),
        authoredOn=fhir_instant(r.created_at),
        lastModified=fhir_instant(r.updated_at),
        requester=requester(r.clinic_id, r.clinic_name),
        owner=Reference(
            reference=f"HealthcareService/{r.service.id}", display=r.service.organization
        ),
        note=[step_note(r.service, step) for step in r.service_steps],
        output=[
            TaskOutput(
                type=RESULTING_ACTIVITY, valueCodeableConcept=CodeableConcept(text=r.outcome)
            )
        ]
        if r.outcome
        else [],
    )
