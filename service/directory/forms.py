"""The directory pages' inputs (pure): the search's query parameters and the service form,
read into the directory's own types with a plain message for each field at fault, and a
service written back as the form's values."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec

from service.directory import words
from service.directory.model import Category, Contact, ServiceDetails
from service.directory.repository import ServiceQuery
from service.patients.model import Modality, PainCondition

PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
MAX_OFFSET = 100_000
DEFAULT_RADIUS_KM = 25.0
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
NO_NUL = re.compile(r"^[^\x00]*$")


class Params(Mapping[str, str]):
    """What a page reads from a query string or a form: a text per name (the first sent),
    or every one sent (:meth:`all`, for checkboxes)."""

    def __init__(self, source: Any) -> None:
        self._lists = {key: [str(value) for value in source.getall(key)] for key in source}
        self._values = {key: values[0] for key, values in self._lists.items() if values}

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def text(self, key: str) -> str:
        return self._values.get(key, "").strip()

    def all(self, key: str) -> list[str]:
        return self._lists.get(key, [])


@dataclass
class Search:
    """A directory search as the page asks it; ``errors`` by query parameter."""

    query: ServiceQuery
    near: tuple[float, float] | None
    radius_km: float
    limit: int
    offset: int
    values: dict[str, str]
    errors: dict[str, str]

    def link(self, offset: int) -> str:
        """This search's page at ``offset``."""
        kept = {k: v for k, v in self.values.items() if v and k != "offset"}
        if offset:
            kept["offset"] = str(offset)
        return "/app/directory" + ("?" + urlencode(kept) if kept else "")


SEARCH_LABELS = {
    "name": "Name",
    "category": "Category",
    "condition": "Pain condition",
    "modality": "How people take part",
    "language": "Language",
    "accepting": "Taking referrals",
    "latitude": "Latitude",
    "longitude": "Longitude",
    "radius_km": "Within",
    "limit": "Services a page",
    "offset": "Start at",
}
"""Every query parameter of the search, as the page names it."""
SEARCH_FIELDS = tuple(SEARCH_LABELS)


def _choice(text: str, choices: Any, field_name: str, errors: dict[str, str], what: str) -> Any:
    if not text:
        return None
    try:
        return choices(text)
    except ValueError:
        errors[field_name] = f"Choose {what} from the list"
        return None


def _number(
    text: str,
    parse: Callable[[str], float],
    low: float,
    high: float,
    above_low: bool = False,
) -> float | None:
    """``text`` as a finite number in range, else None."""
    try:
        value = parse(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value > high or value < low or (above_low and value == low):
        return None
    return value


def read_search(params: Params) -> Search:
    values = {name: params.text(name) for name in SEARCH_FIELDS}
    errors: dict[str, str] = {}
    name = values["name"] or None
    if name is not None and (len(name) > 200 or not NO_NUL.match(name)):
        errors["name"] = "Enter up to 200 characters of a service's name"
        name = None
    category = _choice(values["category"], Category, "category", errors, "a category")
    condition = _choice(values["condition"], PainCondition, "condition", errors, "a condition")
    modality = _choice(values["modality"], Modality, "modality", errors, "a way of taking part")
    language = values["language"] or None
    if language is not None and not LANGUAGE_TAG.match(language):
        errors["language"] = "Choose a language from the list"
        language = None
    accepting = {"": None, "true": True, "false": False}.get(values["accepting"], "bad")
    if accepting == "bad":
        errors["accepting"] = "Choose whether the service is taking referrals"
        accepting = None
    near = None
    lat = lon = None
    if values["latitude"]:
        lat = _number(values["latitude"], float, -90, 90)
        if lat is None:
            errors["latitude"] = "Enter a latitude from -90 to 90, like 51.5"
    if values["longitude"]:
        lon = _number(values["longitude"], float, -180, 180)
        if lon is None:
            errors["longitude"] = "Enter a longitude from -180 to 180, like -0.12"
    if bool(values["latitude"]) != bool(values["longitude"]):
        missing = "longitude" if values["latitude"] else "latitude"
        errors.setdefault(missing, f"Enter the {missing} too, to search near a place")
    if lat is not None and lon is not None:
        near = (lat, lon)
    radius = DEFAULT_RADIUS_KM
    if values["radius_km"]:
        given = _number(values["radius_km"], float, 0, 1000, above_low=True)
        if given is None:
            errors["radius_km"] = "Enter a distance above 0 and up to 1000 km"
        else:
            radius = given
    limit = PAGE_SIZE
    if values["limit"]:
        size = _number(values["limit"], int, 1, MAX_PAGE_SIZE)
        if size is None:
            errors["limit"] = f"Show from 1 to {MAX_PAGE_SIZE} services a page"
        else:
            limit = int(size)
    offset = 0
    if values["offset"]:
        start = _number(values["offset"], int, 0, MAX_OFFSET)
        if start is None:
            errors["offset"] = f"Start from 0 to {MAX_OFFSET:,}"
        else:
            offset = int(start)
    query = ServiceQuery(
        name=name,
        category=category.value if category else None,
        condition=condition.value if condition else None,
        language=language.split("-", 1)[0].lower() if language else None,
        modality=modality.value if modality else None,
        accepting=accepting,
    )
    return Search(query, near, radius, limit, offset, values, errors)


# --------------------------------------------------------------------------- the service form

TEXTS = {
    "name": ("Name", 200),
    "organization": ("Organisation", 200),
    "description": ("Description", 4000),
    "address": ("Address", 500),
    "schedule": ("When it runs", 500),
    "cost": ("Cost", 500),
    "referral_method": ("How to refer", 500),
}
"""The form's free-text fields: label and longest length."""
LABELS = {
    **{name: label for name, (label, _) in TEXTS.items()},
    "category": "Category",
    "modalities": "How people take part",
    "conditions": "Pain conditions served",
    "languages": "Languages",
    "latitude": "Latitude",
    "longitude": "Longitude",
    "catchment_km": "Catchment",
    "min_age": "Youngest age",
    "max_age": "Oldest age",
    "accepting_referrals": "Taking referrals",
    "capacity": "Places open",
    "phone": "Phone",
    "email": "Email",
    "url": "Website",
}
"""Every field of the form, in its order on the page, as its label names it."""
CHECKBOXES = ("modalities", "conditions")
FIELD_TYPES = {f.name: f.type for f in msgspec.structs.fields(ServiceDetails)}
CONTACT_TYPES = {f.name: f.type for f in msgspec.structs.fields(Contact)}
CONTACT_MESSAGES = {
    "phone": "Enter a phone number of 3 to 30 digits, spaces and + ( ) - .",
    "email": "Enter an email address, like name@example.org",
    "url": "Enter a web address starting with https:// or http://",
}


CHOICE_MESSAGES = {
    "category": "Choose a category from the list",
    "modalities": "Choose from the ways listed",
    "conditions": "Choose from the conditions listed",
    "languages": "List up to 20 languages",
}


def _text_message(name: str) -> str:
    label, longest = TEXTS[name]
    return f"{label}: up to {longest:,} characters"


@dataclass
class ServiceForm:
    """The form as sent: its values kept for a re-render, the service it describes when
    every field is right, else a message per field."""

    values: dict[str, Any]
    details: ServiceDetails | None
    errors: dict[str, str]


def read_service(params: Params) -> ServiceForm:
    values: dict[str, Any] = {
        name: params.all(name) if name in CHECKBOXES else params.get(name, "") for name in LABELS
    }
    modalities, conditions = values["modalities"], values["conditions"]
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in TEXTS:
        text = values[name].strip()
        if text:
            raw[name] = text
    for name in ("name", "organization"):
        if name not in raw:
            errors[name] = f"Enter the {TEXTS[name][0].lower()}"
    if values["category"]:
        raw["category"] = values["category"]
    else:
        errors["category"] = "Choose a category"
    raw["modalities"] = modalities
    if not modalities:
        errors["modalities"] = "Choose at least one way people take part"
    raw["conditions"] = conditions
    raw["languages"], bad_language = _languages(values["languages"])
    if bad_language is not None:
        errors["languages"] = (
            f"“{bad_language}” is not a language Belong knows by name: "
            "give its code instead, like pt-BR"
        )
    lat, lon = values["latitude"].strip(), values["longitude"].strip()
    if lat or lon:
        latitude = _number(lat, float, -90, 90) if lat else None
        longitude = _number(lon, float, -180, 180) if lon else None
        if latitude is None:
            errors["latitude"] = "Enter a latitude from -90 to 90 with the longitude, or neither"
        if longitude is None:
            errors["longitude"] = "Enter a longitude from -180 to 180 with the latitude, or neither"
        if latitude is not None and longitude is not None:
            raw["location"] = {"lat": latitude, "lon": longitude}
    catchment = values["catchment_km"].strip()
    if catchment:
        raw["catchment_km"] = _number(catchment, float, 0, 1000, above_low=True)
        if raw["catchment_km"] is None:
            errors["catchment_km"] = "Enter a distance above 0 and up to 1000 km, or leave it empty"
    for name, high, message in (
        ("min_age", 120, "Enter a whole number of years from 0 to 120, or leave it empty"),
        ("max_age", 120, "Enter a whole number of years from 0 to 120, or leave it empty"),
        (
            "capacity",
            100_000,
            "Enter a whole number of places from 0 to 100,000, or leave it empty",
        ),
    ):
        text = values[name].strip()
        if text:
            number = _number(text, int, 0, high)
            if number is None:
                errors[name] = message
            else:
                raw[name] = int(number)
    accepting = values["accepting_referrals"]
    if accepting in ("true", "false"):
        raw["accepting_referrals"] = accepting == "true"
    else:
        errors["accepting_referrals"] = "Choose whether the service is taking referrals"
    contact = {name: values[name].strip() for name in CONTACT_MESSAGES if values[name].strip()}
    for name, text in contact.items():
        if not _fits(text, CONTACT_TYPES[name]):
            errors[name] = CONTACT_MESSAGES[name]
    if contact:
        raw["contact"] = contact
    for name, value in raw.items():
        if name in errors or name in ("location", "contact"):
            continue
        if not _fits(value, FIELD_TYPES[name]):
            errors[name] = _text_message(name) if name in TEXTS else CHOICE_MESSAGES[name]
    if errors:
        return ServiceForm(values, None, errors)
    details = msgspec.convert(raw, ServiceDetails)
    for name, _ in details.problems():
        errors[name] = "The youngest age is above the oldest age"
    return ServiceForm(values, None if errors else details, errors)


def _fits(value: Any, type_: Any) -> bool:
    try:
        msgspec.convert(value, type_)
    except msgspec.ValidationError:
        return False
    return True


def _languages(text: str) -> tuple[list[str], str | None]:
    """The tags a comma-separated list of languages names (names or tags), and the first
    item that is neither."""
    tags: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        tag = words.language_tag(item) or (item if LANGUAGE_TAG.match(item) else None)
        if tag is None:
            return tags, item
        if tag not in tags:
            tags.append(tag)
    return tags, None


def service_values(service: ServiceDetails) -> dict[str, Any]:
    """The form's values for a stored service (what editing it starts from)."""
    contact = service.contact or Contact()
    return {
        **{name: getattr(service, name) or "" for name in TEXTS},
        "category": service.category.value,
        "modalities": [m.value for m in service.modalities],
        "conditions": [c.value for c in service.conditions],
        "languages": ", ".join(words.language(tag) for tag in service.languages),
        "latitude": words.number(service.location.lat) if service.location else "",
        "longitude": words.number(service.location.lon) if service.location else "",
        "catchment_km": words.number(service.catchment_km) if service.catchment_km else "",
        "min_age": "" if service.min_age is None else str(service.min_age),
        "max_age": "" if service.max_age is None else str(service.max_age),
        "accepting_referrals": "true" if service.accepting_referrals else "false",
        "capacity": "" if service.capacity is None else str(service.capacity),
        "phone": contact.phone or "",
        "email": contact.email or "",
        "url": contact.url or "",
    }


NEW_SERVICE = {
    **{name: "" for name in LABELS},
    "modalities": [],
    "conditions": [],
    "accepting_referrals": "true",
}
"""The form's values for a service not yet added."""
