"""The patients' pages in words: profile values, needs and services as people say them."""

from __future__ import annotations

from service.directory.words import LANGUAGES, MODALITIES
from service.instruments.model import Severity
from service.matching.model import CONDITION_WORDS
from service.patients.model import CONTACT_METHOD_WORDS, AgeBand, PainCondition, PatientProfile

SEVERITY_WORDS = {
    Severity.NONE: "",
    Severity.MILD: "mild",
    Severity.MODERATE: "moderate",
    Severity.SEVERE: "severe",
}


def age_band_words(band: AgeBand) -> str:
    low, high = band.bounds
    return f"{low} and over" if band is AgeBand.AGE_75_PLUS else f"{low} to {high}"


def condition_words(condition: PainCondition) -> str:
    words = CONDITION_WORDS[condition]
    return words[0].upper() + words[1:]


def language_words(tag: str) -> str:
    primary, _, region = tag.partition("-")
    name = LANGUAGES.get(primary.lower())
    if name is None:
        return f"language {tag}"
    return f"{name} ({region.upper()})" if region else name


def kilometres(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") + " km"


def profile_facts(profile: PatientProfile) -> list[tuple[str, str]]:
    """Each profile field as (what, in words); "not recorded" where it is empty."""
    missing = "not recorded"
    location = (
        f"latitude {profile.location.lat}, longitude {profile.location.lon}"
        if profile.location
        else missing
    )
    return [
        (
            "Pain conditions",
            ", ".join(condition_words(c) for c in profile.pain_conditions) or missing,
        ),
        ("Languages", ", ".join(language_words(t) for t in profile.languages) or missing),
        ("Postcode", profile.postcode or missing),
        ("Location", location),
        (
            "Preferred ways to take part",
            ", ".join(MODALITIES[m].lower() for m in profile.preferred_modalities) or missing,
        ),
        ("Age band", age_band_words(profile.age_band) if profile.age_band else missing),
        (
            "Can travel",
            f"up to {kilometres(profile.max_travel_km)}" if profile.max_travel_km else missing,
        ),
        (
            "Services may get in touch by",
            CONTACT_METHOD_WORDS[profile.contact_method].lower()
            if profile.contact_method
            else missing,
        ),
        ("Messages", "do not contact" if profile.do_not_contact else "may be contacted"),
    ]
