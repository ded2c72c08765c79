"""Patterns for parameters, shared by validation and the published document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar.params import QueryParameter

from service.fhir.search import MONTH_DAY, YEAR
from service.platform.database import utc_field
from service.platform.errors import ApiError, FieldError

INSTANT = (
    rf"^{YEAR}-{MONTH_DAY}T([01][0-9]|2[0-3]):[0-5][0-9]"
    r"(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$"
)
"""An RFC 3339 instant with its offset, years 1-9999."""
FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
ID_PATTERN = rf"^{FHIR_ID}$"
"""A FHIR id (letters, digits, '-', '.'; at most 64): patient, resource and service ids."""
SEARCH_TOKEN = r"(([^|,\x00]{0,255}\|)?[^|,\x00]{1,64}|[^|,\x00]{1,255}\|)"  # noqa: S105
"""A token: ``system|code``, ``|code``, ``code`` or ``system|`` (any code of the system)."""
TOKEN_LIST = rf"^{SEARCH_TOKEN}(,{SEARCH_TOKEN}){{0,9}}$"


def reference_list(resource_type: str) -> str:
    """Up to ten references, comma-separated: ``id``, ``Type/id`` or an absolute URL."""
    reference = rf"((https?://[^,\x00]{{1,200}}/)?{resource_type}/)?{FHIR_ID}"
    return rf"^{reference}(,{reference}){{0,9}}$"


ID_LIST = rf"^{FHIR_ID}(,{FHIR_ID}){{0,9}}$"
MISSING = r"^(true|false)$"
IDENTIFIER_SEARCH = r"^([^\x00|]{0,255}\|)?[^\x00|]{1,255}$"
"""An identifier token, ``system|value``, ``|value`` (no system) or ``value`` (any system)."""
_IDENTIFIER_ITEM = r"(([^\x00|,]{0,255}\|)?[^\x00|,]{1,255}|[^\x00|,]{1,255}\|)"
IDENTIFIER_LIST = rf"^{_IDENTIFIER_ITEM}(,{_IDENTIFIER_ITEM}){{0,9}}$"
"""Identifier tokens, comma-separated: also ``system|`` (any value of the system)."""
_QUERY_CHAR = r"([!-$'-{}~]|%(0[1-9A-Fa-f]|[1-689A-Fa-f][0-9A-Fa-f]|7[0-9ABD-Fabd-f]))"
"""A character of a query string: printable ASCII without space, ``%``, ``&`` and ``|``,
or a percent-escape of anything but NUL and ``|``."""
IF_NONE_EXIST = rf"^identifier=({_QUERY_CHAR}{{0,255}}(\||%7[Cc]))?{_QUERY_CHAR}{{1,255}}$"
"""The FHIR search query of a conditional create, as sent in ``If-None-Exist``:
``identifier=system|value`` (or ``|value``, or ``value``), percent-encoded or not (the
bar may be sent as ``%7C``)."""

LATITUDE = r"-?(90(\.0{1,8})?|[1-8]?[0-9](\.[0-9]{1,8})?)"
LONGITUDE = r"-?(180(\.0{1,8})?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]{1,8})?)"
NEAR = rf"^{LATITUDE},{LONGITUDE}$"

Instant = Annotated[str | None, QueryParameter(required=False, pattern=INSTANT)]


def repeatable(pattern: str, name: str | None = None, most: int = 4) -> Any:
    """A FHIR search parameter that may repeat (each repeat must match: FHIR ANDs them),
    each value fitting ``pattern`` (published; the handler's parsers check it)."""
    return Annotated[
        list[str] | None,
        QueryParameter(
            name=name,
            required=False,
            max_items=most,
            schema_extra={"items": {"type": "string", "pattern": pattern}},
        ),
    ]


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
