"""Patterns for parameters, shared by validation and the published document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar.params import QueryParameter

from service.api.errors import ApiError, FieldError
from service.store.database import utc_field

YEAR = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
MONTH_DAY = (
    r"((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-9]))"
)
"""A month and a day it has (29 February passes; outside a leap year it answers 400)."""
INSTANT = (
    rf"^{YEAR}-{MONTH_DAY}T([01][0-9]|2[0-3]):[0-5][0-9]"
    r"(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$"
)
"""An RFC 3339 instant with its offset, years 1-9999."""
FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
ID_PATTERN = rf"^{FHIR_ID}$"
"""A FHIR id (letters, digits, '-', '.'; at most 64): patient, resource and service ids."""
PATIENT_REFERENCE = rf"^(Patient/)?{FHIR_ID}$"
SERVICE_REFERENCE = rf"^(HealthcareService/)?{FHIR_ID}$"
SEARCH_TOKEN = r"([^|,\x00]{0,255}\|)?[^|,\x00]{1,64}"  # noqa: S105 - a pattern, not a secret
TOKEN_LIST = rf"^{SEARCH_TOKEN}(,{SEARCH_TOKEN}){{0,9}}$"
DATE_SEARCH = (
    rf"^(eq|gt|lt|ge|le)?{YEAR}(-(0[1-9]|1[0-2])|-{MONTH_DAY}"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?$"
)
"""A FHIR date search value with a prefix: a year, a month, a day or an instant."""

LATITUDE = r"-?(90(\.0{1,8})?|[1-8]?[0-9](\.[0-9]{1,8})?)"
LONGITUDE = r"-?(180(\.0{1,8})?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]{1,8})?)"
NEAR = rf"^{LATITUDE},{LONGITUDE}$"

Instant = Annotated[str | None, QueryParameter(required=False, pattern=INSTANT)]


def instant(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400, f"{field} names a day that does not exist", [FieldError(field, "no such day")]
        ) from None
    return utc_field(parsed, field)
