"""FHIR search parameter syntax: tokens, date prefixes, and paging links."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SUPPORTED_PREFIXES = ("eq", "gt", "lt", "ge", "le")
YEAR = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
MONTH_DAY = (
    r"((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-9]))"
)
"""A month and a day it can have (29 February passes the pattern whatever the year)."""
DATE_SEARCH = (
    rf"^(eq|gt|lt|ge|le)?{YEAR}(-(0[1-9]|1[0-2])|-{MONTH_DAY}"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)?)?)?$"
)
"""A FHIR date search value with a prefix: a year, a month, a day or a time (its zone UTC
when not given). Published as the parameters' pattern, and what :func:`parse_date` accepts:
any other value answers 400, never a search that finds nothing."""
_DATE_SEARCH = re.compile(DATE_SEARCH)
_DATE = re.compile(
    r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,
)
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class SearchError(ValueError):
    def __init__(self, parameter: str, message: str, status: int = 400) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message
        self.status = status
        """400 for a value that is not the parameter's syntax; 422 for a well-formed date
        that does not exist (29 February outside a leap year)."""


def parse_token(parameter: str, value: str) -> list[tuple[str | None, str]]:
    """``system|code``, ``|code``, ``code`` or ``system|``, comma-separated: any one may match.

    The system is None for a bare code (any system) and "" for ``|code`` (no system); the
    code is "" for ``system|`` (any code of that system).
    """
    tokens: list[tuple[str | None, str]] = []
    for part in value.split(","):
        system, bar, code = part.partition("|")
        if not bar:
            system, code = "", part
        if not (code or system) or len(code) > 64 or len(system) > 255:
            raise SearchError(parameter, f"{part!r} is not a token (system|code)")
        tokens.append((system if bar else None, code))
    return tokens


def token_matches(token: tuple[str | None, str], system: str, code: str) -> bool:
    """Whether a parsed token (see :func:`parse_token`) matches a coding."""
    wanted_system, wanted_code = token
    return wanted_system in (None, system) and wanted_code in ("", code)


def parse_reference(parameter: str, value: str, resource_type: str, base: str) -> list[str]:
    """The ids a reference parameter names, comma-separated: ``id``, ``Type/id`` or the
    absolute ``{base}/Type/id`` (``base`` the server's FHIR base). An absolute URL on
    another server names nothing stored here, so it adds no id."""
    ids = []
    for part in value.split(","):
        local = part.removeprefix(f"{base}/")
        if _ABSOLUTE.match(local):
            continue
        ident = local.removeprefix(f"{resource_type}/")
        if _ID.fullmatch(ident) is None:
            raise SearchError(
                parameter,
                f"{part!r} is not an id, {resource_type}/<id> or {base}/{resource_type}/<id>",
            )
        ids.append(ident)
    return ids


def id_groups(values: Sequence[str] | None) -> list[list[str]]:
    """Each repeat of ``_id``: the comma-separated ids it names."""
    groups = [value.split(",") for value in values or []]
    for ident in (ident for group in groups for ident in group):
        if _ID.fullmatch(ident) is None:
            raise SearchError("_id", f"{ident!r} is not a FHIR id")
    return groups


def parse_missing(parameter: str, value: str) -> bool:
    """``:missing=true`` or ``:missing=false``."""
    if value not in ("true", "false"):
        raise SearchError(parameter, "true or false")
    return value == "true"


def _precision(time: str) -> timedelta:
    """How much time a written time of day covers: 10:00 a minute, 10:00:05 a second,
    10:00:05.25 a hundredth of a second."""
    parts = time.split(":")
    if len(parts) < 3:
        return timedelta(minutes=1)
    _, _, fraction = parts[2].partition(".")
    return timedelta(seconds=10 ** -len(fraction)) if fraction else timedelta(seconds=1)


def _range(parameter: str, text: str) -> tuple[datetime, datetime]:
    """The instants [start, end) a FHIR date or dateTime value covers (``text`` fits
    DATE_SEARCH), clamped to the years 1-9999 that Python can hold."""
    match = _DATE.match(text)
    assert match is not None
    year = int(match["year"])
    try:
        if match["time"]:
            local = datetime.fromisoformat(
                f"{text[:10]}T{match['time']}{(match['tz'] or 'Z').replace('Z', '+00:00')}"
            )
            try:
                instant = local.astimezone(UTC)
            except OverflowError:
                instant = EARLIEST if year == 1 else LATEST
            return instant, _later(instant, _precision(match["time"]))
        if match["day"]:
            start = datetime(year, int(match["month"]), int(match["day"]), tzinfo=UTC)
            return start, _later(start, timedelta(days=1))
    except ValueError as exc:  # 29 February outside a leap year
        raise SearchError(parameter, f"{text!r} is a day the calendar does not have", 422) from exc
    if match["month"]:
        month = int(match["month"])
        return datetime(year, month, 1, tzinfo=UTC), _month_start(
            year + month // 12, month % 12 + 1
        )
    return datetime(year, 1, 1, tzinfo=UTC), _month_start(year + 1, 1)


def _later(instant: datetime, span: timedelta) -> datetime:
    return LATEST if instant > LATEST - span else instant + span


def _month_start(year: int, month: int) -> datetime:
    return LATEST if year > LATEST.year else datetime(year, month, 1, tzinfo=UTC)


def parse_date(parameter: str, value: str) -> list[tuple[str, datetime]]:
    """A prefixed date as comparisons on an instant, e.g. ``ge2024-01-01``."""
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    if prefix not in SUPPORTED_PREFIXES:
        raise SearchError(parameter, f"prefix {prefix!r} is not supported")
    if not _DATE_SEARCH.fullmatch(value):
        raise SearchError(
            parameter,
            f"{value!r} is not a FHIR date search value: an optional eq, gt, lt, ge or le, "
            "then YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.ffffff]][Z|+hh:mm]",
        )
    text = value[2:] if value[:2] in PREFIXES else value
    start, end = _range(parameter, text)
    return {
        "eq": [("ge", start), ("lt", end)],
        "ge": [("ge", start)],
        "gt": [("ge", end)],
        "lt": [("lt", start)],
        "le": [("lt", end)],
    }[prefix]


def reference_groups(
    parameter: str, values: Sequence[str] | None, resource_type: str, base: str
) -> list[list[str]]:
    """Each repeat of a reference parameter as the ids it names (:func:`parse_reference`)."""
    return [parse_reference(parameter, value, resource_type, base) for value in values or []]


def date_filters(parameter: str, values: Sequence[str] | None) -> list[tuple[str, datetime]]:
    """Every repeat of a date parameter as comparisons, all of which must hold."""
    return [c for value in values or [] for c in parse_date(parameter, value)]


def one_named(groups: list[list[str]]) -> str | None:
    """The one id that reference ``groups`` name, if they name exactly one (the patient a
    search is audited for)."""
    named = {ident for group in groups for ident in group}
    return named.pop() if len(named) == 1 else None
