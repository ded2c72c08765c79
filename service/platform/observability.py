"""Request ids, structured JSON logs, and Prometheus metrics, none of them carrying PHI.

Every request gets an id (the caller's ``X-Request-ID`` when it is sane, else a new one),
echoed in the response and stamped on every log line. The access log and the metrics name
the route *template* (``/v1/patients/{patient_id}``), never the path, query or body, so no
patient id, answer or score reaches a log or a label. An exception is logged by its
classes, frames and SQLSTATE, never by its message (see :func:`safe_traceback`).

Under granian's several workers the metrics are aggregated across processes through
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by
``belong serve``); a single process keeps them in memory.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import re
import time
import traceback
import uuid
from typing import IO, Any

from litestar import Controller, Litestar, Response, get
from litestar.datastructures import State
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from service.platform.auth import scoped

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
_PARAM_TYPE = re.compile(r"\{(\w+)(?::\w+)?\}")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
access_log = logging.getLogger("belong.access")

REQUESTS = Counter(
    "belong_http_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "belong_http_request_duration_seconds",
    "Time to answer, by route template",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SCREENINGS = Counter(
    "belong_screenings_total",
    "Screenings recorded, by instrument and band",
    ["instrument", "band"],
)
REFERRALS = Counter(
    "belong_referral_status_changes_total", "Referrals entering each status", ["status"]
)
POOL = Gauge(
    "belong_db_pool_connections",
    "Database connections of this process by state",
    ["state"],
    multiprocess_mode="livesum",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key in ("method", "route", "status", "duration_ms", "exception"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info and record.exc_info[1] is not None:
            # Any library's log.exception: its message may hold values, so it is left out.
            entry["exception"] = safe_traceback(record.exc_info[1])
        return json.dumps(entry, ensure_ascii=False)


JsonFormatter.converter = time.gmtime


_ERROR_FIELDS = {
    "sqlstate": "SQLSTATE",
    "table_name": "table",
    "column_name": "column",
    "constraint_name": "constraint",
}
"""What a database error says about itself without quoting a value (asyncpg)."""


def error_name(error: BaseException) -> str:
    """The exception's class, and for a database error its code and the names of the table,
    column and constraint involved, e.g. ``asyncpg.exceptions.CheckViolationError
    (SQLSTATE 23514, table screenings, constraint ck_total)``."""
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    facts = [
        f"{label} {value}"
        for field, label in _ERROR_FIELDS.items()
        if isinstance(value := getattr(error, field, None), str) and value
    ]
    return f"{name} ({', '.join(facts)})" if facts else name


def safe_traceback(error: BaseException) -> str:
    """The traceback of ``error`` and of the exceptions it was raised from, without any
    exception's message: the messages may hold data. SQLAlchemy's carry the statement and
    its parameters, PostgreSQL's ``DETAIL`` repeats the failing row or key, and any other
    exception may quote what it was given. Each is named by :func:`error_name` instead."""
    # Each exception, newest first, with how it led to the one before it.
    chain: list[tuple[BaseException, str]] = []
    current: BaseException | None = error
    link = ""
    while current is not None and all(current is not seen for seen, _ in chain):
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for failure, link in reversed(chain):
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(traceback.extract_tb(failure.__traceback__)))
        parts.append(error_name(failure) + "\n")
        parts.append(link)
    return "".join(parts).rstrip("\n")


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """JSON lines on ``stream`` (stderr by default) for every logger, at ``level``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx and granian name URLs in their own lines; keep them out.
    for noisy in ("httpx", "granian.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RequestContextMiddleware:
    """Request id in and out, one access-log line, and the HTTP metrics.

    It wraps the whole application (see :func:`install`), outside Litestar's exception
    handling and router, so it sees every answer as sent: a 401 or 429 raised by a
    middleware, a 404 for a path no route matches, a 500. Litestar's own middleware stack
    runs only for matched routes, and an exception raised in it reaches the app's
    exception handler only after passing every middleware above it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                if scope["method"] == "OPTIONS":
                    headers = _with_allow(scope, headers)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)


def install(app: Litestar) -> None:
    """Put :class:`RequestContextMiddleware` around everything the app answers."""
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler)


def _with_allow(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Allow lists every method of the path, not only those of one handler (Litestar 2.25
    answers OPTIONS with the methods of the handler it matched)."""
    template = route_template(scope)
    methods = sorted(
        {
            method
            for route in scope["app"].routes
            if _PARAM_TYPE.sub(r"{\1}", route.path) == template
            for method in route.methods
        }
    )
    if not methods:
        return headers
    kept = [(k, v) for k, v in headers if k.lower() != b"allow"]
    return [*kept, (b"allow", ", ".join(methods).encode())]


def route_template(scope: Scope) -> str:
    """The route template Litestar matched, e.g. /v1/patients/{patient_id}; never the path.
    A path no route matches is ``unmatched``: it may hold anything, an id included."""
    template = scope.get("path_template")
    if not template:
        return "unmatched"
    return _without_types(template)


@functools.lru_cache(maxsize=512)
def _without_types(template: str) -> str:
    """``{patient_id:str}`` -> ``{patient_id}`` (the app has a fixed set of templates)."""
    return _PARAM_TYPE.sub(r"{\1}", template)


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    from prometheus_client import REGISTRY

    return REGISTRY


class MetricsController(Controller):
    path = "/metrics"
    tags = ["operations"]

    @get(
        operation_id="metrics",
        summary="Prometheus metrics (no patient data in any label)",
        media_type=CONTENT_TYPE_LATEST,
        opt=scoped("metrics:read"),
        include_in_schema=True,
    )
    async def metrics(self, state: State) -> Response[bytes]:
        pool = state.db.engine.pool
        for name in ("checkedout", "checkedin", "overflow"):
            reading = getattr(pool, name, None)
            if callable(reading):
                POOL.labels(name).set(reading())
        return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
