"""The directory's codes as people read them (pure): categories, conditions, modalities,
languages, ages and whether a service takes referrals."""

from __future__ import annotations

from datetime import datetime

from service.directory.model import Category, ServiceDetails
from service.patients.model import Modality, PainCondition

CATEGORIES = {
    Category.SUPPORT_GROUP: "Support group",
    Category.SOCIAL_ACTIVITY: "Social activity",
    Category.FAMILY_COMMUNICATION: "Family communication",
    Category.COUNSELLING: "Counselling",
}
CONDITIONS = {
    PainCondition.CRPS: "Complex regional pain syndrome (CRPS)",
    PainCondition.CHRONIC_HEADACHE: "Chronic headache or migraine",
    PainCondition.LOW_BACK_PAIN: "Low back pain",
    PainCondition.CHRONIC_PAIN_SYNDROME: "Chronic pain syndrome",
    PainCondition.FIBROMYALGIA: "Fibromyalgia",
    PainCondition.OTHER: "Other long-term pain",
}
MODALITIES = {
    Modality.IN_PERSON: "In person",
    Modality.ONLINE: "Online",
    Modality.PHONE: "By phone",
}
LANGUAGES = {
    "ar": "Arabic",
    "bn": "Bengali",
    "cy": "Welsh",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fa": "Persian",
    "fr": "French",
    "gu": "Gujarati",
    "hi": "Hindi",
    "it": "Italian",
    "lt": "Lithuanian",
    "pa": "Punjabi",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "so": "Somali",
    "ta": "Tamil",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
"""Names of the languages a directory most often lists; any other tag is shown as given."""
SOURCES = {
    "api": "Added in Belong",
    "hsds": "Imported from an Open Referral (HSDS) file",
    "fhir": "Imported from a FHIR Bundle",
}
FORMATS = {"hsds": "Open Referral HSDS 3.0", "fhir": "FHIR Bundle of HealthcareService"}


def modality(value: str) -> str:
    """A stored modality in words; an unknown one as stored."""
    try:
        return MODALITIES[Modality(value)]
    except ValueError:
        return value


def language(tag: str) -> str:
    return LANGUAGES.get(tag, LANGUAGES.get(tag.lower(), tag))


def language_tag(text: str) -> str | None:
    """The tag a language's name stands for (any case), else None."""
    wanted = text.strip().lower()
    return next((tag for tag, name in LANGUAGES.items() if name.lower() == wanted), None)


def ages(min_age: int | None, max_age: int | None) -> str:
    if min_age is not None and max_age is not None:
        return f"{min_age} to {max_age}"
    if min_age is not None:
        return f"{min_age} and over"
    if max_age is not None:
        return f"Up to {max_age}"
    return "Any age"


def takes_referrals(service: ServiceDetails) -> bool:
    return service.accepting_referrals and service.capacity != 0


def referrals(service: ServiceDetails) -> str:
    if not service.accepting_referrals:
        return "Not taking referrals"
    if service.capacity == 0:
        return "Full: no places open"
    if service.capacity is not None:
        places = "place" if service.capacity == 1 else "places"
        return f"Taking referrals ({service.capacity} {places} open)"
    return "Taking referrals"


def number(value: float) -> str:
    """A number as typed: 10 rather than 10.0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def size(limit: int) -> str:
    """A byte count in words: 1 MiB, 512 KiB."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= scale:
            return f"{number(round(limit / scale, 1))} {unit}"
    return f"{limit} bytes"


def day(moment: datetime) -> str:
    """A date as people write it: 2 Mar 2026."""
    return f"{moment.day} {moment:%b %Y}"
