"""What every FHIR search shares: handling, result parameters, formats and keyset paging.

A search handler declares its own search parameters in its signature and marks itself
``documented(search=True)``; the finished document then gives it the result parameters below
and :func:`~service.platform.limits.check_request` lets parameters it does not have through
(FHIR's lenient handling) unless the request says ``Prefer: handling=strict``. The handler
reads the result parameters with :meth:`Search.of`, asks its repository for
:attr:`Search.fetch` rows after :attr:`Search.after`, keeps a page with :meth:`Search.page`
and answers :func:`service.fhir.bundles.searchset`, whose links carry only what was applied.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.platform.documented import OPENAPI, Facts
from service.platform.errors import ApiError, FieldError

MAX_COUNT = 100
"""The largest page: a larger ``_count`` is served as this many, not refused."""
CURSOR = "_cursor"
"""The keyset position of a next page: opaque, from a ``next`` link."""
JSON_FORMATS = ("json", "application/json", "application/fhir+json", "fhir+json")
"""``_format`` values Belong answers; any other (``xml``, ``application/fhir+xml``...) 406."""
JSON_MEDIA = frozenset({"application/json", "application/fhir+json", "application/json+fhir"})
WILDCARDS = frozenset({"*/*", "application/*"})
PRETTY = "_pretty"
FORMAT = "_format"
GENERAL = frozenset({FORMAT, PRETTY})
"""Parameters of every FHIR interaction, searches and reads alike."""
ELEMENT = r"[A-Za-z][A-Za-z0-9]{0,63}"
ELEMENTS = rf"^{ELEMENT}(,{ELEMENT}){{0,49}}$"
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "As requested, resource contains less than the full resource",
}
ALWAYS_KEPT = ("resourceType", "id", "meta")
MANDATORY = {
    "Observation": ("status", "code"),
    "QuestionnaireResponse": ("status",),
    "Questionnaire": ("status",),
    "ServiceRequest": ("status", "intent", "subject"),
    "Task": ("status", "intent"),
}
"""Elements R4 requires (min 1), kept in an ``_elements`` subset as FHIR asks."""

RESULT_PARAMETERS: tuple[dict[str, Any], ...] = (
    {
        "name": "_count",
        "in": "query",
        "required": False,
        "description": (
            f"Page size; at most {MAX_COUNT} (a larger value is served as {MAX_COUNT}); "
            "0 answers the total without entries"
        ),
        "schema": {"type": "integer", "minimum": 0},
    },
    {
        "name": "_summary",
        "in": "query",
        "required": False,
        "description": "count: the total without entries",
        "schema": {"type": "string", "enum": ["count", "false"]},
    },
    {
        "name": "_total",
        "in": "query",
        "required": False,
        "description": "none leaves the total out; estimate and accurate give the exact one",
        "schema": {"type": "string", "enum": ["none", "estimate", "accurate"]},
    },
    {
        "name": "_elements",
        "in": "query",
        "required": False,
        "description": (
            "Top-level elements to return (id, meta and required elements are always kept); "
            "each subset carries meta.tag SUBSETTED"
        ),
        "schema": {"type": "string", "pattern": ELEMENTS},
    },
    {
        "name": CURSOR,
        "in": "query",
        "required": False,
        "description": "Where the next page starts: copy it from a next link, never build it",
        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,400}$"},
    },
)
"""Published on every search operation (``documented(search=True)``)."""
GENERAL_PARAMETERS: tuple[dict[str, Any], ...] = (
    {
        "name": FORMAT,
        "in": "query",
        "required": False,
        "description": "JSON only: any other format (xml, application/fhir+xml) answers 406",
        "schema": {"type": "string", "enum": list(JSON_FORMATS)},
    },
    {
        "name": PRETTY,
        "in": "query",
        "required": False,
        "description": "true: indented JSON",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
)
"""Published on every FHIR operation (not the plain JSON ones served under /fhir)."""
PREFER_HANDLING: dict[str, Any] = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "description": (
        "handling=strict: a parameter this search does not support answers 400 naming it. "
        "Otherwise (handling=lenient, the default) it is ignored and left out of the self link."
    ),
    "schema": {"type": "string"},
}
SEARCH_NOTE = (
    "Parameters not listed here are ignored (FHIR lenient handling) and left out of the "
    "Bundle's self link; with `Prefer: handling=strict` they answer 400 naming them. Pages "
    "follow each other by the `next` link (keyset paging: rows added meanwhile neither "
    "repeat nor shift a page)."
)

R = TypeVar("R")


def is_search(request: Request[Any, Any, Any]) -> bool:
    """The handler is a FHIR search: ``documented(search=True, ...)``."""
    fact = request.route_handler.opt.get(OPENAPI)
    return isinstance(fact, Facts) and fact.search


def check_values(request: Request[Any, Any, Any]) -> None:
    """400 for a result or general parameter whose value its published schema refuses
    (``_format`` aside: any format but JSON answers 406)."""
    for parameter in (*RESULT_PARAMETERS, GENERAL_PARAMETERS[1]):
        name, schema = parameter["name"], parameter["schema"]
        value = request.query_params.get(name)
        if value is None or schema["type"] != "string":
            continue
        if ("enum" in schema and value not in schema["enum"]) or (
            "pattern" in schema and not re.fullmatch(schema["pattern"], value)
        ):
            allowed = ", ".join(schema["enum"]) if "enum" in schema else "the documented syntax"
            raise ApiError(
                400, f"{name} is not valid", [FieldError(name, f"expected {allowed}", "invalid")]
            )


def strict(request: Request[Any, Any, Any]) -> bool:
    """``Prefer: handling=strict`` (RFC 7240 preferences, any number, in any header)."""
    for header in request.headers.getall("prefer", []):
        for preference in header.split(","):
            name, _, value = preference.strip().partition("=")
            if name.strip().lower() == "handling" and value.strip().strip('"').lower() == "strict":
                return True
    return False


def check_format(request: Request[Any, Any, Any]) -> None:
    """406 (an OperationOutcome) when neither ``_format`` nor ``Accept`` allows JSON."""
    wanted = request.query_params.get(FORMAT)
    # An unencoded "+" (application/fhir+json typed into a URL) arrives as a space.
    if wanted is not None and wanted.replace(" ", "+") not in JSON_FORMATS:
        raise ApiError(
            406,
            "Only JSON is served",
            [FieldError(FORMAT, f"{wanted!r} is not served: use json", "not_acceptable")],
        )
    accept = ",".join(request.headers.getall("accept", []))
    if not accept.strip():
        return
    ranges = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(r in JSON_MEDIA or r in WILDCARDS for r in ranges if r):
        raise ApiError(
            406,
            "Only JSON is served",
            [FieldError("Accept", "accept application/fhir+json", "not_acceptable")],
        )


class PrettyMiddleware:
    """``_pretty=true`` on /fhir: the JSON answer indented (its length recounted)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith("/fhir")
            or (PRETTY, "true") not in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        ):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        body = bytearray()

        async def send_pretty(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = dict(message)
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            content = bytes(body)
            sent: list[tuple[bytes, bytes]] = list(start.get("headers", []))
            if b"json" in dict(sent).get(b"content-type", b"") and content:
                content = msgspec.json.format(content, indent=2)
            headers = [(k, v) for k, v in sent if k != b"content-length"]
            headers.append((b"content-length", str(len(content)).encode()))
            await send(cast(Message, {**start, "headers": headers}))
            await send({"type": "http.response.body", "body": content, "more_body": False})

        await self.app(scope, receive, send_pretty)


@dataclass(frozen=True, slots=True)
class Cursor:
    """The sort key and id of the last row of a page: the next starts after it."""

    sort: str
    value: str | None
    """The sort column's value as text (an instant in ISO form, a name); None by id alone."""
    id: str

    def encode(self) -> str:
        raw = msgspec.json.encode([self.sort, self.value, self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, sort: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            named, value, ident = msgspec.json.decode(raw, type=tuple[str, str | None, str])
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise _bad_cursor("not a cursor Belong wrote: follow the next link") from None
        if named != sort:
            raise _bad_cursor("from a search sorted otherwise: keep the next link's _sort")
        if "\x00" in ident or (value is not None and "\x00" in value):
            raise _bad_cursor("not a cursor Belong wrote: follow the next link")
        return cls(named, value, ident)

    def instant(self) -> datetime:
        """The value as the instant it was written from."""
        try:
            instant = datetime.fromisoformat(self.value or "")
        except ValueError:
            instant = None
        if instant is None or instant.tzinfo is None:
            raise _bad_cursor("not a cursor Belong wrote: follow the next link")
        return instant


def _bad_cursor(message: str) -> ApiError:
    """422: the cursor has the published syntax (else check_values answered 400) but is not
    one Belong wrote for this search."""
    return ApiError(422, "The paging cursor is not valid", [FieldError(CURSOR, message, "invalid")])


@dataclass(frozen=True, slots=True)
class Search:
    """A search's result parameters, as applied."""

    count: int
    """The page size, capped at :data:`MAX_COUNT`; 0 for the total alone."""
    sort: str
    after: Cursor | None = None
    total: bool = True
    """False for ``_total=none``."""
    elements: tuple[str, ...] | None = None
    applied: tuple[tuple[str, str], ...] = ()
    """The result parameters as applied, for the links (``_count`` as capped)."""

    @classmethod
    def of(cls, request: Request[Any, Any, Any], sort: str = "", default_count: int = 20) -> Search:
        """The request's result parameters (:func:`check_values` checked them); ``sort``
        names the order the handler serves, which a cursor must have been written for."""
        query = request.query_params
        applied: list[tuple[str, str]] = []
        count = default_count
        if "_count" in query:
            count = min(_integer(query["_count"]), MAX_COUNT)
            applied.append(("_count", str(count)))
        summary = query.get("_summary")
        if summary == "count":
            count = 0
            applied.append(("_summary", "count"))
        total = query.get("_total")
        if total is not None:
            applied.append(("_total", total))
        elements = query.get("_elements")
        if elements is not None:
            applied.append(("_elements", elements))
        cursor = query.get(CURSOR)
        return cls(
            count=count,
            sort=sort,
            after=Cursor.decode(cursor, sort) if cursor is not None else None,
            total=total != "none",
            elements=tuple(elements.split(",")) if elements is not None else None,
            applied=tuple(applied),
        )

    @property
    def keyset(self) -> tuple[datetime, str] | None:
        """The (instant, id) a repository's page starts after, for searches sorted by an
        instant; None on the first page."""
        return (self.after.instant(), self.after.id) if self.after is not None else None

    @property
    def fetch(self) -> int:
        """How many rows to ask for: one more than a page, to know whether another follows."""
        return self.count + 1 if self.count else 0

    def page(
        self, rows: Sequence[R], key: Callable[[R], tuple[str | None, str]]
    ) -> tuple[list[R], Cursor | None]:
        """The page of ``rows`` (fetched as :attr:`fetch` asks) and the cursor after its
        last row when more follow; ``key`` gives a row's sort value as text and its id."""
        kept = list(rows[: self.count])
        if len(rows) <= self.count or not kept:
            return kept, None
        value, ident = key(kept[-1])
        return kept, Cursor(self.sort, value, ident)

    def subset(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource with only the ``_elements`` asked for (and those always kept),
        tagged SUBSETTED."""
        assert self.elements is not None
        kept = {*ALWAYS_KEPT, *MANDATORY.get(resource.get("resourceType", ""), ()), *self.elements}
        subset = {name: value for name, value in resource.items() if name in kept}
        meta = dict(subset.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        subset["meta"] = meta
        return subset


def _integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(
            400, "_count is a whole number", [FieldError("_count", "0 or more", "invalid")]
        )
    return value
