"""Directory entries as FHIR HealthcareService, and referrals as ServiceRequest + Task.

Belong's own facts use Belong code systems and extensions (below). ServiceRequest and
Task follow SDOHCC-ServiceRequest and SDOHCC-TaskForReferralManagement; a ServiceRequest
code is SNOMED CT where a code is confirmed (support groups 711281004, mental health
counselling 306226009) and a Belong code otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.domain.directory import Category, DirectoryService
from service.domain.patients import PAIN_CONDITION_CODES, SNOMED
from service.domain.referrals import Status
from service.fhir import CANONICAL_BASE
from service.fhir.screening import fhir_instant
from service.fhir.types import (
    Annotation,
    CodeableConcept,
    Coding,
    ContactPoint,
    Extension,
    HealthcareService,
    Meta,
    Reference,
    ServiceRequest,
    Task,
)

CATEGORY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/service-category"
CONDITION_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/pain-condition"
MODALITY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/modality"
EXTENSION = f"{CANONICAL_BASE}/StructureDefinition"
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare"
SDOHCC_CODES = f"{SDOHCC}/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
SOCIAL_CONNECTION = Coding(
    system=SDOHCC_CODES, code="social-connection", display="Social Connection"
)

CATEGORY_DISPLAY = {
    Category.SUPPORT_GROUP: "Support group",
    Category.SOCIAL_ACTIVITY: "Social activity",
    Category.FAMILY_COMMUNICATION: "Family and carer communication",
    Category.COUNSELLING: "Counselling for chronic pain",
}
REFERRAL_CODE = {
    Category.SUPPORT_GROUP: Coding(
        system=SNOMED, code="711281004", display="Referral to support group"
    ),
    Category.COUNSELLING: Coding(
        system=SNOMED, code="306226009", display="Referral to mental health counseling service"
    ),
}
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


def _category_coding(category: Category) -> Coding:
    return Coding(system=CATEGORY_SYSTEM, code=category.value, display=CATEGORY_DISPLAY[category])


def healthcare_service(service: DirectoryService, updated_at: datetime) -> HealthcareService:
    characteristic = [
        CodeableConcept(coding=[Coding(system=MODALITY_SYSTEM, code=m.value)], text=m.value)
        for m in service.modalities
    ]
    for condition in service.conditions:
        codings = [Coding(system=CONDITION_SYSTEM, code=condition.value)]
        snomed = PAIN_CONDITION_CODES.get(condition)
        if snomed is not None:
            codings.append(Coding(system=SNOMED, code=snomed[0], display=snomed[1]))
        characteristic.append(CodeableConcept(coding=codings, text=condition.value))
    extensions = [
        Extension(url=f"{EXTENSION}/accepting-referrals", valueBoolean=service.takes_referrals)
    ]
    if service.catchment_km is not None:
        extensions.append(
            Extension(url=f"{EXTENSION}/catchment-km", valueDecimal=service.catchment_km)
        )
    if service.capacity is not None:
        extensions.append(Extension(url=f"{EXTENSION}/capacity", valueInteger=service.capacity))
    if service.min_age is not None:
        extensions.append(Extension(url=f"{EXTENSION}/minimum-age", valueInteger=service.min_age))
    if service.max_age is not None:
        extensions.append(Extension(url=f"{EXTENSION}/maximum-age", valueInteger=service.max_age))
    telecom = []
    contact = service.contact
    if contact is not None:
        telecom = [
            ContactPoint(system=system, value=value)
            for system, value in (
                ("phone", contact.phone),
                ("email", contact.email),
                ("url", contact.url),
            )
            if value
        ]
    return HealthcareService(
        id=service.id,
        meta=Meta(lastUpdated=fhir_instant(updated_at)),
        extension=extensions,
        active=True,
        providedBy=Reference(display=service.organization),
        category=[CodeableConcept(coding=[SOCIAL_CONNECTION])],
        type=[CodeableConcept(coding=[_category_coding(service.category)])],
        name=service.name,
        comment=service.description,
        telecom=telecom,
        characteristic=characteristic,
        communication=[
            CodeableConcept(coding=[Coding(system="urn:ietf:bcp:47", code=tag)])
            for tag in service.languages
        ],
        referralMethod=[CodeableConcept(text=service.referral_method)]
        if service.referral_method
        else [],
        availabilityExceptions=service.schedule,
    )


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


def service_request(r: ReferralFacts) -> ServiceRequest:
    category = r.service.category
    coding = REFERRAL_CODE.get(category) or _category_coding(category)
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
        category=[
            CodeableConcept(
                coding=[Coding(system=SNOMED, code="410606002", display="Social service procedure")]
            ),
            CodeableConcept(coding=[SOCIAL_CONNECTION]),
        ],
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
    )


# -- import: a FHIR Bundle of HealthcareService (+ Location, Organization) --------------


def _by_reference(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry") or []:
        resource = (entry or {}).get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        kind, ident = resource.get("resourceType"), resource.get("id")
        if kind and ident:
            found[f"{kind}/{ident}"] = resource
        if isinstance(entry.get("fullUrl"), str):
            found[entry["fullUrl"]] = resource
    return found


def _codes(concepts: Any, system: str) -> list[str]:
    codes = []
    for concept in concepts or []:
        for coding in (concept or {}).get("coding") or []:
            if isinstance(coding, dict) and coding.get("system") == system and coding.get("code"):
                codes.append(str(coding["code"]))
    return codes


def _extension(resource: dict[str, Any], name: str) -> Any:
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == f"{EXTENSION}/{name}":
            for key, value in extension.items():
                if key.startswith("value"):
                    return value
    return None


SNOMED_TO_CONDITION = {
    code[0]: condition for condition, code in PAIN_CONDITION_CODES.items() if code
}


def healthcare_service_details(resource: dict[str, Any], bundle: dict[str, Any]) -> dict[str, Any]:
    """The directory entry a HealthcareService describes (validated by the caller)."""
    refs = _by_reference(bundle)
    organization = resource.get("providedBy") or {}
    org_resource = refs.get(str(organization.get("reference")), {})
    characteristic = resource.get("characteristic")
    conditions = _codes(characteristic, CONDITION_SYSTEM) or [
        SNOMED_TO_CONDITION[c].value
        for c in _codes(characteristic, SNOMED)
        if c in SNOMED_TO_CONDITION
    ]
    location_resource: dict[str, Any] = {}
    for reference in resource.get("location") or []:
        location_resource = refs.get(str((reference or {}).get("reference")), {})
        if location_resource:
            break
    modalities = _codes(characteristic, MODALITY_SYSTEM) or (
        ["in-person"] if location_resource else []
    )
    telecom = {
        t.get("system"): t.get("value")
        for t in resource.get("telecom") or []
        if isinstance(t, dict)
    }
    categories = _codes(resource.get("type"), CATEGORY_SYSTEM)
    accepting = _extension(resource, "accepting-referrals")
    details: dict[str, Any] = {
        "name": resource.get("name"),
        "organization": org_resource.get("name") or organization.get("display"),
        "category": categories[0] if categories else None,
        "modalities": modalities,
        "conditions": conditions,
        "languages": [
            code
            for concept in resource.get("communication") or []
            for code in [
                c.get("code") for c in (concept or {}).get("coding") or [] if isinstance(c, dict)
            ]
            if code
        ],
        "accepting_referrals": bool(resource.get("active", True)) and accepting is not False,
        "catchment_km": _extension(resource, "catchment-km"),
        "capacity": _extension(resource, "capacity"),
        "min_age": _extension(resource, "minimum-age"),
        "max_age": _extension(resource, "maximum-age"),
        "schedule": resource.get("availabilityExceptions"),
        "description": resource.get("comment"),
        "referral_method": next(
            (
                c.get("text")
                for c in resource.get("referralMethod") or []
                if isinstance(c, dict) and c.get("text")
            ),
            None,
        ),
    }
    position = location_resource.get("position") or {}
    if position.get("latitude") is not None and position.get("longitude") is not None:
        details["location"] = {"lat": position["latitude"], "lon": position["longitude"]}
    address = location_resource.get("address") or {}
    if isinstance(address, dict):
        text = address.get("text") or ", ".join(
            str(x)
            for x in [*(address.get("line") or []), address.get("city"), address.get("postalCode")]
            if x
        )
        if text:
            details["address"] = text
    contact = {k: telecom.get(k) for k in ("phone", "email", "url") if telecom.get(k)}
    if contact:
        details["contact"] = contact
    return {k: v for k, v in details.items() if v is not None}


def healthcare_services(bundle: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(entry index, HealthcareService) for each HealthcareService in the Bundle."""
    found = []
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "HealthcareService":
            found.append((index, resource))
    return found
