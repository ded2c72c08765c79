"""Referrals as FHIR: SDOHCC-ServiceRequest (the order) and SDOHCC-TaskForReferralManagement
(its fulfilment, which the service's side moves along).

A ServiceRequest code is SNOMED CT where a code is confirmed (support groups 711281004,
mental health counselling 306226009) and the Belong service category otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.directory.fhir import SDOHCC, SDOHCC_CODES, SOCIAL_CONNECTION, category_coding
from service.directory.model import Category, DirectoryService
from service.fhir.types import (
    Annotation,
    CodeableConcept,
    Coding,
    Meta,
    Reference,
    ServiceRequest,
    Task,
    TaskOutput,
)
from service.patients.model import SNOMED
from service.referrals.model import Status
from service.screenings.fhir import fhir_instant

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
SERVICE_REQUEST_CATEGORIES = (
    Coding(system=SNOMED, code="410606002", display="Social service procedure"),
    SOCIAL_CONNECTION,
)
"""Every referral's ServiceRequest.category, one coding to a concept."""
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


def referral_code(category: Category) -> Coding:
    """ServiceRequest.code of a referral to a service of this category."""
    return REFERRAL_CODE.get(category) or category_coding(category)


def service_request(r: ReferralFacts) -> ServiceRequest:
    coding = referral_code(r.service.category)
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
        category=[CodeableConcept(coding=[coding]) for coding in SERVICE_REQUEST_CATEGORIES],
        priority="routine",
        code=CodeableConcept(coding=[coding], text=f"Referral to {r.service.name}"),
        subject=Reference(reference=f"Patient/{r.patient_id}"),
        authoredOn=fhir_instant(r.created_at),
        requester=Reference(reference=f"Organization/{r.clinic_id}", display=r.clinic_name),
        performer=[
            Reference(reference=f"HealthcareService/{r.service.id}", display=r.service.name)
        ],
        reasonReference=[Reference(reference=f"Observation/{r.screening_id}-total")]
        if r.screening_id
        else [],
        note=notes,
    )


def task(r: ReferralFacts) -> Task:
    return Task(
        id=r.id,
        meta=Meta(
            profile=[f"{SDOHCC}/StructureDefinition/SDOHCC-TaskForReferralManagement"],
            lastUpdated=fhir_instant(r.updated_at),
        ),
        status=r.status.value,
        statusReason=CodeableConcept(text=r.status_reason) if r.status_reason else None,
        intent="order",
        priority="routine",
        code=CodeableConcept(
            coding=[Coding(system="http://hl7.org/fhir/CodeSystem/task-code", code="fulfill")]
        ),
        focus=Reference(reference=f"ServiceRequest/{r.id}"),
        for_=Reference(reference=f"Patient/{r.patient_id}"),
        authoredOn=fhir_instant(r.created_at),
        lastModified=fhir_instant(r.updated_at),
        requester=Reference(reference=f"Organization/{r.clinic_id}", display=r.clinic_name),
        owner=Reference(
            reference=f"HealthcareService/{r.service.id}", display=r.service.organization
        ),
        output=[
            TaskOutput(
                type=RESULTING_ACTIVITY, valueCodeableConcept=CodeableConcept(text=r.outcome)
            )
        ]
        if r.outcome
        else [],
    )
