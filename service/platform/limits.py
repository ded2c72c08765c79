"""Request limits: JSON content types, per-client rate limits, and a time limit per request."""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from typing import Any

from litestar import Request
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.fhir.params import check_format, check_values, is_search, strict
from service.platform.errors import FHIR_JSON, ApiError, FieldError
from service.platform.observability import route_template

JSON_TYPES = ("application/json",)
FHIR_TYPES = (FHIR_JSON, "application/json")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def check_request(request: Request[Any, Any, Any]) -> None:
    """400 for a query parameter the operation does not have (a FHIR search ignores it
    unless the request prefers strict handling), or repeats one it cannot; 406 on /fhir
    for a format other than JSON; 415 for a body that is not JSON (FHIR JSON too, on
    /fhir). The clinician app's pages (/app) and the secret links' pages read their own
    forms."""
    path = request.url.path
    if path == "/app" or path.startswith("/app/") or request.route_handler.opt.get("secret_link"):
        return
    fhir = path.startswith("/fhir")
    if fhir:
        check_format(request)
    template = route_template(request.scope)
    known = request.app.state.query_parameters.get((request.method, template))
    if known is not None:
        lenient = fhir and is_search(request) and not strict(request)
        for name in set(request.query_params.keys()):
            schema = known.get(name)
            if schema is None:
                if lenient:
                    continue
                raise ApiError(
                    400,
                    f"Unknown query parameter {name!r}",
                    [FieldError(name, "not a parameter of this operation", "unknown")],
                )
            values = request.query_params.getall(name)
            if schema.get("type") != "array" and len(values) > 1:
                raise ApiError(
                    400, f"{name} may be given once", [FieldError(name, "repeated", "invalid")]
                )
            if "null" in values and not _admits_text(schema, "null"):
                # Litestar reads the text "null" as no value; the document does not.
                raise ApiError(
                    400, f"{name} cannot be 'null'", [FieldError(name, "not a value", "invalid")]
                )
        if fhir:
            check_values(request)
    if request.method not in BODY_METHODS:
        return
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    allowed = FHIR_TYPES if fhir else JSON_TYPES
    if content_type not in allowed:
        raise ApiError(
            415,
            f"Send the body as {' or '.join(allowed)}",
            [FieldError("Content-Type", f"{content_type or 'missing'} is not accepted", "media")],
        )


def _admits_text(schema: dict[str, Any], text: str) -> bool:
    if "enum" in schema:
        return text in schema["enum"]
    if schema.get("type") not in (None, "string"):
        return False
    pattern = schema.get("pattern")
    return pattern is None or re.fullmatch(pattern, text) is not None


class RateLimiter:
    """A fixed one-minute window per API client, per worker process."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[uuid.UUID, tuple[int, int]] = {}

    def check(self, client_id: uuid.UUID) -> None:
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        window = int(now // 60)
        start, count = self._windows.get(client_id, (window, 0))
        if start != window:
            count = 0
        if count >= self.per_minute:
            retry = max(1, math.ceil((window + 1) * 60 - now))
            raise ApiError(
                429,
                f"More than {self.per_minute} requests a minute from this client",
                headers={"Retry-After": str(retry)},
            )
        if len(self._windows) > 100_000:
            self._windows.clear()
        self._windows[client_id] = (window, count + 1)


class TimeLimitMiddleware:
    """Answer 503 (with Retry-After) when a request takes longer than ``seconds``."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, send)
        except TimeoutError:
            raise ApiError(
                503, "The request took too long; retry shortly", headers={"Retry-After": "2"}
            ) from None


class IncompleteBodyMiddleware:
    """400 for a request whose body ends before it is complete.

    The server reports a body that is not validly chunked (as when a request carries both
    ``Transfer-Encoding: chunked`` and ``Content-Length`` but a plain body: granian goes by
    Transfer-Encoding alone, as RFC 9112 section 6.1 allows) as a disconnect while the body
    is read, which Litestar answers 500. The client is at fault: 400."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False

        async def receive_body() -> Message:
            nonlocal complete
            message = await receive()
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
            elif message["type"] == "http.disconnect" and not complete:
                raise ApiError(
                    400,
                    "The request body ended before it was complete",
                    [FieldError("body", "incomplete, or not validly chunked", "malformed")],
                    headers={"Connection": "close"},
                )
            return message

        await self.app(scope, receive_body, send)
