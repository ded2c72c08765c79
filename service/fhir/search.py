"""FHIR search parameter syntax: tokens, date prefixes, and paging links."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SUPPORTED_PREFIXES = ("eq", "gt", "lt", "ge", "le")
_DATE = re.compile(
    r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class SearchError(ValueError):
    def __init__(self, parameter: str, message: str, status: int = 400) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message
        self.status = status
        """400 for a value that is not the parameter's syntax; 422 for a well-formed date
        that does not exist (30 February)."""


def parse_token(parameter: str, value: str) -> list[tuple[str | None, str]]:
    """``system|code``, ``|code`` or ``code``, comma-separated: any one may match.

    The system is None for a bare code (any system) and "" for ``|code`` (no system).
    """
    tokens: list[tuple[str | None, str]] = []
    for part in value.split(","):
        system, bar, code = part.partition("|")
        if not bar:
            system, code = "", part
        if not code or len(code) > 64 or len(system) > 255:
            raise SearchError(parameter, f"{part!r} is not a token (system|code)")
        tokens.append((system if bar else None, code))
    return tokens


def _precision(time: str) -> timedelta:
    """How much time a written time of day covers: 10:00 a minute, 10:00:05 a second,
    10:00:05.25 a hundredth of a second."""
    parts = time.split(":")
    if len(parts) < 3:
        return timedelta(minutes=1)
    _, _, fraction = parts[2].partition(".")
    return timedelta(seconds=10 ** -len(fraction)) if fraction else timedelta(seconds=1)


def _range(parameter: str, text: str) -> tuple[datetime, datetime]:
    """The instants [start, end) a FHIR date or dateTime value covers."""
    match = _DATE.match(text)
    if match is None:
        raise SearchError(parameter, f"{text!r} is not a FHIR date or dateTime")
    year = int(match["year"])
    try:
        if match["time"]:
            instant = datetime.fromisoformat(
                f"{text[:10]}T{match['time']}{(match['tz'] or 'Z').replace('Z', '+00:00')}"
            ).astimezone(UTC)
            return instant, instant + _precision(match["time"])
        if match["day"]:
            start = datetime(year, int(match["month"]), int(match["day"]), tzinfo=UTC)
            return start, start + timedelta(days=1)
        if match["month"]:
            month = int(match["month"])
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return start, end
        return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    except ValueError as exc:
        raise SearchError(parameter, f"{text!r} is not a valid date: {exc}") from exc


def parse_date(parameter: str, value: str) -> list[tuple[str, datetime]]:
    """A prefixed date as comparisons on an instant, e.g. ``ge2024-01-01``."""
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    text = value[2:] if value[:2] in PREFIXES else value
    if prefix not in SUPPORTED_PREFIXES:
        raise SearchError(parameter, f"prefix {prefix!r} is not supported")
    start, end = _range(parameter, text)
    return {
        "eq": [("ge", start), ("lt", end)],
        "ge": [("ge", start)],
        "gt": [("ge", end)],
        "lt": [("lt", start)],
        "le": [("lt", end)],
    }[prefix]
