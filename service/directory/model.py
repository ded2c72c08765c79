"""A clinic's directory of support services, as matching sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from service.patients.model import Coordinates, Modality, PainCondition
from service.platform.languages import LanguageTag

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class Category(StrEnum):
    SUPPORT_GROUP = "support-group"
    SOCIAL_ACTIVITY = "social-activity"
    FAMILY_COMMUNICATION = "family-communication"
    COUNSELLING = "counselling"


class Capacity(StrEnum):
    """What a service says of its intake, through its inbox (``directory_services.capacity``)."""

    ACCEPTING = "accepting"
    WAITLIST = "waitlist"
    NOT_ACCEPTING = "not-accepting"


CAPACITY_WORDS = {
    Capacity.ACCEPTING: "Accepting referrals",
    Capacity.WAITLIST: "Taking referrals onto a waiting list",
    Capacity.NOT_ACCEPTING: "Not accepting referrals",
}


class Contact(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    phone: Annotated[str, msgspec.Meta(pattern=r"^[0-9+()\-. ]{3,30}$")] | None = None
    email: (
        Annotated[
            str, msgspec.Meta(pattern=r"^[^@ \x00-\x1f\x7f]{1,64}@[^@ \x00-\x1f\x7f]{1,190}$")
        ]
        | None
    ) = None
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^ \x00-\x1f\x7f]{1,300}$")] | None = None


class ServiceDetails(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Everything a directory entry records, as a client writes it."""

    name: ShortText
    organization: ShortText
    category: Category
    modalities: Annotated[list[Modality], msgspec.Meta(min_length=1, max_length=3)]
    conditions: Annotated[list[PainCondition], msgspec.Meta(max_length=6)] = []
    """Pain conditions the service is for; empty means every condition."""
    languages: Annotated[list[LanguageTag], msgspec.Meta(max_length=20)] = []
    """Languages it is offered in; empty means unknown (not filtered on)."""
    location: Coordinates | None = None
    address: Text | None = None
    catchment_km: Annotated[float, msgspec.Meta(gt=0, le=1000)] | None = None
    """How far from ``location`` an in-person service takes people."""
    schedule: Text | None = None
    cost: Text | None = None
    min_age: Annotated[int, msgspec.Meta(ge=0, le=120)] | None = None
    max_age: Annotated[int, msgspec.Meta(ge=0, le=120)] | None = None
    accepting_referrals: bool = True
    capacity: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    """Open places, where the service says; 0 means full."""
    contact: Contact | None = None
    referral_method: Text | None = None
    description: Annotated[str, msgspec.Meta(max_length=4000, pattern=r"^[^\x00]*$")] | None = None

    def problems(self) -> list[tuple[str, str]]:
        """Rules across fields, as (field, message); a schema cannot say them."""
        found = []
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            found.append(("min_age", "is above max_age"))
        return found


class DirectoryService(ServiceDetails, frozen=True, kw_only=True):
    id: str
    capacity_status: Capacity | None = None
    """What the service itself last said of its intake through its inbox (None: nothing),
    at ``capacity_status_at``; matching drops a service not accepting, and ranks one with a
    waiting list lower."""
    capacity_status_at: datetime | None = None

    @property
    def takes_referrals(self) -> bool:
        return self.accepting_referrals and self.capacity != 0


def stored_service(
    service_id: str,
    details: dict[str, Any],
    capacity: str | None = None,
    capacity_at: datetime | None = None,
) -> DirectoryService:
    """A directory entry as stored (its ``details``, and the ``capacity`` the service said
    at ``capacity_at``), as the domain's service."""
    return msgspec.convert(
        {
            **details,
            "id": service_id,
            "capacity_status": capacity,
            "capacity_status_at": capacity_at,
        },
        DirectoryService,
    )


@dataclass(frozen=True, slots=True)
class ResponseFigures:
    """How a service answers the clinic's referrals: how many left requested by being
    accepted or rejected (``answered``; through its inbox or recorded by the clinic), how
    many of those were accepted, and the median time from request to acceptance."""

    answered: int
    accepted: int
    median_seconds_to_accept: float | None

    @property
    def shown(self) -> bool:
        """Enough answers for a rate to mean something (:data:`MIN_ANSWERED`)."""
        return self.answered >= MIN_ANSWERED

    @property
    def acceptance_rate(self) -> float | None:
        return round(self.accepted / self.answered, 3) if self.shown else None

    @property
    def median_days_to_accept(self) -> float | None:
        if not self.shown or self.median_seconds_to_accept is None:
            return None
        return round(self.median_seconds_to_accept / 86400, 1)


MIN_ANSWERED = 5
"""Fewer answered referrals than this give no rate or median: one referral is not a rate."""
NO_FIGURES = ResponseFigures(0, 0, None)
