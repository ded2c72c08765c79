"""Open Referral HSDS 3.0 services -> directory entries.

HSDS has no slot for a service's Belong category, the pain conditions it serves, its
modalities, catchment or whether it takes referrals now: those travel as ``attributes``
whose ``taxonomy_term`` belongs to the taxonomy ``belong`` (see
schemas/hsds/belong-taxonomy.json). Everything else comes from native HSDS fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from service.directory.model import ServiceDetails

TAXONOMY = "belong"


@dataclass(frozen=True, slots=True)
class Parsed:
    index: int
    source_id: str
    details: ServiceDetails


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    source_id: str | None
    reasons: tuple[str, ...]


def _attributes(service: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for attribute in service.get("attributes") or []:
        if not isinstance(attribute, dict):
            continue
        term = attribute.get("taxonomy_term") or {}
        if not isinstance(term, dict):
            continue
        taxonomy = term.get("taxonomy") or term.get("vocabulary") or term.get("taxonomy_id")
        if taxonomy != TAXONOMY or not term.get("code"):
            continue
        value = attribute.get("value")
        found.setdefault(str(term["code"]), []).append("" if value is None else str(value))
    return found


def _locations(service: dict[str, Any]) -> list[dict[str, Any]]:
    locations = []
    for link in service.get("service_at_locations") or []:
        if isinstance(link, dict) and isinstance(link.get("location"), dict):
            locations.append(link["location"])
    return locations


def _address(location: dict[str, Any]) -> str | None:
    for address in location.get("addresses") or []:
        if isinstance(address, dict):
            parts = [address.get(k) for k in ("address_1", "address_2", "city", "postal_code")]
            text = ", ".join(str(p) for p in parts if p)
            if text:
                return text
    return None


def _schedule(service: dict[str, Any]) -> str | None:
    lines = []
    for schedule in service.get("schedules") or []:
        if not isinstance(schedule, dict):
            continue
        if schedule.get("description"):
            lines.append(str(schedule["description"]))
        elif schedule.get("byday") or schedule.get("opens_at"):
            lines.append(
                " ".join(
                    str(x)
                    for x in (
                        schedule.get("freq"),
                        schedule.get("byday"),
                        schedule.get("opens_at"),
                        schedule.get("closes_at") and f"-{schedule['closes_at']}",
                    )
                    if x
                )
            )
    return "; ".join(lines) or None


def _phone(service: dict[str, Any]) -> str | None:
    phones = [
        phone
        for contact in _objects(service.get("contacts"))
        for phone in _objects(contact.get("phones"))
    ]
    phones.extend(_objects(service.get("phones")))
    return next((str(p["number"]) for p in phones if p.get("number")), None)


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a list, where HSDS expects a list of objects (else none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def service_details(service: dict[str, Any]) -> dict[str, Any]:
    """The directory entry an HSDS service describes (validated by the caller)."""
    attributes = _attributes(service)
    locations = _locations(service)
    physical = [loc for loc in locations if loc.get("location_type") == "physical"]
    modalities = attributes.get("modality") or sorted(
        {"in-person" if loc.get("location_type") == "physical" else "online" for loc in locations}
    )
    located = next(
        (loc for loc in physical if loc.get("latitude") is not None),
        physical[0] if physical else None,
    )
    organization = service.get("organization") or {}
    accepting = _first(attributes.get("accepting-referrals"))
    status = service.get("status", "active")
    details: dict[str, Any] = {
        "name": service.get("name"),
        "organization": organization.get("name") if isinstance(organization, dict) else None,
        "category": _first(attributes.get("category")),
        "modalities": modalities,
        "conditions": [c for c in attributes.get("condition", []) if c and c != "all"],
        "languages": [
            lang["code"]
            for lang in service.get("languages") or []
            if isinstance(lang, dict) and lang.get("code")
        ],
        "accepting_referrals": status == "active"
        and (accepting is None or accepting.strip().lower() == "true"),
        "description": service.get("description"),
        "schedule": _schedule(service),
        "cost": service.get("fees_description"),
        "min_age": service.get("minimum_age"),
        "max_age": service.get("maximum_age"),
        "referral_method": _first(attributes.get("referral-method")),
    }
    if located is not None:
        if located.get("latitude") is not None and located.get("longitude") is not None:
            details["location"] = {"lat": located["latitude"], "lon": located["longitude"]}
        details["address"] = _address(located)
    catchment = _first(attributes.get("catchment-km"))
    if catchment:
        details["catchment_km"] = _number(catchment)
    capacity = _first(attributes.get("capacity"))
    if capacity:
        details["capacity"] = _number(capacity)
    contact = {
        "phone": _phone(service),
        "email": service.get("email"),
        "url": service.get("url"),
    }
    if any(contact.values()):
        details["contact"] = {k: v for k, v in contact.items() if v}
    for key in ("min_age", "max_age"):
        if isinstance(details[key], float) and details[key].is_integer():
            details[key] = int(details[key])
    return {k: v for k, v in details.items() if v is not None}


def _number(text: str) -> float | int | str:
    try:
        value = float(text)
    except ValueError:
        return text  # left for validation to name
    return int(value) if value.is_integer() else value


ONE_VALUE = ("category", "accepting-referrals", "catchment-km", "capacity", "referral-method")
BOOLEAN = ("accepting-referrals",)


def _taxonomy_problems(service: dict[str, Any]) -> list[str]:
    """Where a record breaks the belong taxonomy's value rules (one value, true/false)."""
    attributes = _attributes(service)
    problems = [
        f"attributes: '{code}' may be given once, not {len(attributes[code])} times"
        for code in ONE_VALUE
        if len(attributes.get(code, [])) > 1
    ]
    problems.extend(
        f"attributes: '{code}' must be true or false, not {value!r}"
        for code in BOOLEAN
        for value in attributes.get(code, [])
        if value.strip().lower() not in ("true", "false")
    )
    for key in ("contacts", "languages", "schedules", "service_at_locations", "attributes"):
        value = service.get(key)
        if value is not None and (
            not isinstance(value, list) or any(not isinstance(v, dict) for v in value)
        ):
            problems.append(f"{key}: a list of objects is expected")
    return problems


def parse(services: Iterable[Any]) -> list[Parsed | Rejected]:
    """Each HSDS service as a directory entry, or the reasons it cannot be one."""
    results: list[Parsed | Rejected] = []
    seen: set[str] = set()
    for index, service in enumerate(services):
        if not isinstance(service, dict):
            results.append(Rejected(index, None, ("not an HSDS service object",)))
            continue
        source_id = service.get("id")
        if (
            not isinstance(source_id, str)
            or not source_id.strip()
            or len(source_id) > 255
            or not source_id.isprintable()
        ):
            results.append(
                Rejected(
                    index, None, ("id: a service id (1-255 printable characters) is required",)
                )
            )
            continue
        if source_id in seen:
            results.append(Rejected(index, source_id, ("id: appears more than once in the file",)))
            continue
        seen.add(source_id)
        details = service_details(service)
        reasons = _taxonomy_problems(service)
        if "category" not in details:
            reasons.append("attributes: no 'category' term from the belong taxonomy")
        if not details.get("modalities"):
            reasons.append("attributes: no 'modality' term and no location to infer it from")
        if not reasons:
            try:
                parsed = msgspec.convert(details, ServiceDetails)
            except msgspec.ValidationError as exc:
                reasons.append(str(exc))
            else:
                reasons.extend(f"{field}: {message}" for field, message in parsed.problems())
                if not reasons:
                    results.append(Parsed(index, source_id, parsed))
                    continue
        results.append(Rejected(index, source_id, tuple(reasons)))
    return results
