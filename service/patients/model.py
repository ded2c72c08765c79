"""The patient profile Belong keeps for matching (no names, addresses or birth dates), and
how a change between two screenings is read."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from service.instruments.model import Direction, MeaningfulChange, NoThreshold
from service.platform.languages import LanguageTag

SNOMED = "http://snomed.info/sct"

PatientId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9\-.]{1,64}$",
        description="The EHR's own patient id (FHIR id syntax: letters, digits, '-', '.')",
        examples=["pat-1042"],
    ),
]
Postcode = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,9}$", examples=["SW1A 1AA"])
]


class PainCondition(StrEnum):
    CRPS = "crps"
    CHRONIC_HEADACHE = "chronic-headache"
    LOW_BACK_PAIN = "low-back-pain"
    CHRONIC_PAIN_SYNDROME = "chronic-pain-syndrome"
    FIBROMYALGIA = "fibromyalgia"
    OTHER = "other"


PAIN_CONDITION_CODES: dict[PainCondition, tuple[str, str] | None] = {
    PainCondition.CRPS: ("128200000", "Complex regional pain syndrome"),
    PainCondition.CHRONIC_HEADACHE: ("37796009", "Migraine"),
    PainCondition.LOW_BACK_PAIN: ("278860009", "Chronic low back pain"),
    PainCondition.CHRONIC_PAIN_SYNDROME: ("82423001", "Chronic pain"),
    PainCondition.FIBROMYALGIA: ("203082005", "Fibromyalgia"),
    PainCondition.OTHER: None,
}
"""SNOMED CT codes for the fixed list. ``chronic-headache`` covers chronic headache and
migraine and carries the Migraine code; ``chronic-pain-syndrome`` carries Chronic pain."""


class Modality(StrEnum):
    IN_PERSON = "in-person"
    ONLINE = "online"
    PHONE = "phone"


class ContactMethod(StrEnum):
    """How the patient would like a service to get in touch."""

    PHONE = "phone"
    TEXT = "text"
    EMAIL = "email"
    LETTER = "letter"


CONTACT_METHOD_WORDS = {
    ContactMethod.PHONE: "Phone call",
    ContactMethod.TEXT: "Text message",
    ContactMethod.EMAIL: "Email",
    ContactMethod.LETTER: "Letter",
}


class AgeBand(StrEnum):
    AGE_18_29 = "18-29"
    AGE_30_44 = "30-44"
    AGE_45_64 = "45-64"
    AGE_65_74 = "65-74"
    AGE_75_PLUS = "75+"

    @property
    def bounds(self) -> tuple[int, int]:
        low, _, high = self.value.partition("-")
        return int(low.rstrip("+")), int(high) if high else 120


class Coordinates(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class PatientProfile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    pain_conditions: Annotated[list[PainCondition], msgspec.Meta(max_length=6)] = []
    languages: Annotated[list[LanguageTag], msgspec.Meta(max_length=10)] = []
    postcode: Postcode | None = None
    location: Coordinates | None = None
    preferred_modalities: Annotated[list[Modality], msgspec.Meta(max_length=3)] = []
    age_band: AgeBand | None = None
    max_travel_km: Annotated[float, msgspec.Meta(gt=0, le=500)] | None = None
    """How far the patient can travel to an in-person service."""
    do_not_contact: bool = False
    """The patient asked not to be contacted: Belong sends them no message (a handout
    link asked for is recorded as suppressed)."""
    contact_method: ContactMethod | None = None
    """How the patient prefers the service they are referred to to get in touch: the
    service's inbox shows it (Belong keeps no phone number or address)."""


class Trend(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    NO_MEANINGFUL_CHANGE = "no meaningful change"


def trend(change: float | None, direction: Direction, threshold: MeaningfulChange) -> Trend | None:
    """Better or worse once the change reaches the instrument's threshold, else no
    meaningful change; None for a first screening or where there is no threshold."""
    if change is None or isinstance(threshold, NoThreshold):
        return None
    if abs(change) < threshold.value:
        return Trend.NO_MEANINGFUL_CHANGE
    worse = change > 0 if direction is Direction.HIGHER_WORSE else change < 0
    return Trend.WORSE if worse else Trend.BETTER
