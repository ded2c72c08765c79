"""A clinic's directory of support services, as matching sees them."""

from __future__ import annotations

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

    @property
    def takes_referrals(self) -> bool:
        return self.accepting_referrals and self.capacity != 0


def stored_service(service_id: str, details: dict[str, Any]) -> DirectoryService:
    """A directory entry as stored (its ``details``), as the domain's service."""
    return msgspec.convert({**details, "id": service_id}, DirectoryService)
