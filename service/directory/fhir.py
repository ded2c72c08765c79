"""Directory entries as FHIR HealthcareService, out and in (a Bundle to import).

Belong's own facts use Belong code systems and extensions (below).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from service.directory.model import Category, DirectoryService
from service.fhir import CANONICAL_BASE
from service.fhir.types import (
    CodeableConcept,
    Coding,
    ContactPoint,
    Extension,
    HealthcareService,
    Meta,
    Reference,
)
from service.patients.model import PAIN_CONDITION_CODES, SNOMED
from service.screenings.fhir import fhir_instant

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


def category_coding(category: Category) -> Coding:
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
        type=[CodeableConcept(coding=[category_coding(service.category)])],
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


# -- import: a FHIR Bundle of HealthcareService (+ Location, Organization) --------------


class _In(msgspec.Struct):
    """Inbound shapes: the elements Belong reads, typed; other R4 elements pass."""


class InCoding(_In):
    system: str | None = None
    code: str | None = None


class InConcept(_In):
    coding: list[InCoding] = []
    text: str | None = None


class InReference(_In):
    reference: str | None = None
    display: str | None = None


class InExtension(_In):
    url: str
    valueBoolean: bool | None = None
    valueDecimal: float | None = None
    valueInteger: int | None = None


class InContactPoint(_In):
    system: str | None = None
    value: str | None = None


class InPosition(_In):
    latitude: float
    longitude: float


class InAddress(_In):
    text: str | None = None
    line: list[str] = []
    city: str | None = None
    postalCode: str | None = None


class InLocation(_In):
    position: InPosition | None = None
    address: InAddress | None = None


class InOrganization(_In):
    name: str | None = None


class InHealthcareService(_In):
    id: str
    name: str | None = None
    active: bool = True
    providedBy: InReference | None = None
    type: list[InConcept] = []
    characteristic: list[InConcept] = []
    communication: list[InConcept] = []
    location: list[InReference] = []
    telecom: list[InContactPoint] = []
    extension: list[InExtension] = []
    referralMethod: list[InConcept] = []
    availabilityExceptions: str | None = None
    comment: str | None = None


def _by_reference(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        kind, ident = resource.get("resourceType"), resource.get("id")
        if kind and ident:
            found[f"{kind}/{ident}"] = resource
        if isinstance(entry.get("fullUrl"), str):
            found[entry["fullUrl"]] = resource
    return found


def _codes(concepts: list[InConcept], system: str) -> list[str]:
    return [c.code for concept in concepts for c in concept.coding if c.system == system and c.code]


def _extension(service: InHealthcareService, name: str) -> Any:
    for extension in service.extension:
        if extension.url == f"{EXTENSION}/{name}":
            for value in (extension.valueBoolean, extension.valueDecimal, extension.valueInteger):
                if value is not None:
                    return value
    return None


SNOMED_TO_CONDITION = {
    code[0]: condition for condition, code in PAIN_CONDITION_CODES.items() if code
}


def healthcare_service_details(resource: dict[str, Any], bundle: dict[str, Any]) -> dict[str, Any]:
    """The directory entry a HealthcareService describes (validated by the caller).

    Raises msgspec.ValidationError, naming the element, for a malformed resource.
    """
    service = msgspec.convert(resource, InHealthcareService)
    refs = _by_reference(bundle)
    organization = service.providedBy or InReference()
    org_resource = msgspec.convert(refs.get(str(organization.reference), {}), InOrganization)
    conditions = _codes(service.characteristic, CONDITION_SYSTEM) or [
        SNOMED_TO_CONDITION[c].value
        for c in _codes(service.characteristic, SNOMED)
        if c in SNOMED_TO_CONDITION
    ]
    location: InLocation | None = None
    for reference in service.location:
        if str(reference.reference) in refs:
            location = msgspec.convert(refs[str(reference.reference)], InLocation)
            break
    modalities = _codes(service.characteristic, MODALITY_SYSTEM) or (
        ["in-person"] if location is not None else []
    )
    telecom = {t.system: t.value for t in service.telecom if t.system and t.value}
    categories = _codes(service.type, CATEGORY_SYSTEM)
    accepting = _extension(service, "accepting-referrals")
    details: dict[str, Any] = {
        "name": service.name,
        "organization": org_resource.name or organization.display,
        "category": categories[0] if categories else None,
        "modalities": modalities,
        "conditions": conditions,
        "languages": [
            c.code for concept in service.communication for c in concept.coding if c.code
        ],
        "accepting_referrals": service.active and accepting is not False,
        "catchment_km": _extension(service, "catchment-km"),
        "capacity": _extension(service, "capacity"),
        "min_age": _extension(service, "minimum-age"),
        "max_age": _extension(service, "maximum-age"),
        "schedule": service.availabilityExceptions,
        "description": service.comment,
        "referral_method": next((c.text for c in service.referralMethod if c.text), None),
    }
    if location is not None:
        if location.position is not None:
            details["location"] = {
                "lat": location.position.latitude,
                "lon": location.position.longitude,
            }
        address = location.address
        if address is not None:
            text = address.text or ", ".join(
                x for x in [*address.line, address.city, address.postalCode] if x
            )
            if text:
                details["address"] = text
    contact = {k: telecom[k] for k in ("phone", "email", "url") if telecom.get(k)}
    if contact:
        details["contact"] = contact
    return {k: v for k, v in details.items() if v is not None}


def healthcare_services(bundle: dict[str, Any]) -> list[tuple[int, dict[str, Any] | None]]:
    """(entry index, HealthcareService) for each HealthcareService in the Bundle, and
    (index, None) for an entry that is not a Bundle entry object."""
    found: list[tuple[int, dict[str, Any] | None]] = []
    for index, entry in enumerate(bundle.get("entry") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource", {}), dict):
            found.append((index, None))
            continue
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("resourceType") == "HealthcareService":
            found.append((index, resource))
    return found
