"""Errors as RFC 9457 problem+json on /v1 and as OperationOutcome on /fhir.

Every handled error names the fields at fault in ``errors``; an unexpected error is
logged with its classes and frames (never its message, never request data) and answers a
bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from service.fhir.types import OperationOutcome, OperationOutcomeIssue
from service.platform.database import UNAVAILABLE, OutOfRange
from service.platform.lookup import Conflict, NotFound, Refused, Stale, Unprocessable
from service.platform.observability import error_name, route_template, safe_traceback

log = logging.getLogger("belong.errors")

PROBLEM_JSON = "application/problem+json"
FHIR_JSON = "application/fhir+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}

APP_TITLES = {
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    409: "That step is not possible now",
    422: "Please check what you entered",
    503: "Belong cannot reach its database",
}
"""The clinician app's error pages, in plain words."""

FHIR_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "duplicate",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str
    code: str = "invalid"


class Fault(Protocol):
    """A field at fault as any layer names one (a FieldError, or scoring's Problem)."""

    @property
    def field(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def code(self) -> str: ...


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] = []


class ApiError(HTTPException):
    """An error with a status, a sentence and the fields at fault."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        errors: Sequence[Fault] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.errors = [FieldError(e.field, e.message, e.code) for e in errors]


def field_error(status: int, field: str, message: str, code: str = "invalid") -> ApiError:
    """An error about one field, the field's message its sentence too."""
    return ApiError(status, message, [FieldError(field, message, code)])


def _validation_errors(exc: ValidationException) -> list[FieldError]:
    errors = []
    for entry in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(entry, dict):
            key = str(entry.get("key") or entry.get("source") or "body")
            errors.append(FieldError(key, str(entry.get("message", "invalid")), "invalid"))
    return errors or [FieldError("body", str(exc.detail), "invalid")]


def _is_fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir")


def error_response(
    request: Request,
    status: int,
    detail: str,
    errors: list[FieldError],
    headers: dict[str, str] | None = None,
) -> Response:
    if _is_app(request):
        return _app_page(request, status, detail, errors, headers)
    if _is_fhir(request):
        issues = [
            OperationOutcomeIssue(
                severity="error",
                code=FHIR_ISSUE_CODES.get(status, "exception"),
                diagnostics=e.message,
                expression=[e.field],
            )
            for e in errors
        ] or [
            OperationOutcomeIssue(
                severity="error",
                code=FHIR_ISSUE_CODES.get(status, "exception"),
                diagnostics=detail,
            )
        ]
        return Response(
            OperationOutcome(issue=issues),
            status_code=status,
            media_type=FHIR_JSON,
            headers=headers,
        )
    body = ProblemDetails(
        type="about:blank",
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        errors=errors,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _is_app(request: Request) -> bool:
    path = request.scope.get("path", "")
    return bool(path == "/app" or path.startswith("/app/"))


def _app_page(
    request: Request,
    status: int,
    detail: str,
    errors: list[FieldError],
    headers: dict[str, str] | None,
) -> Response:
    """The clinician app's error page: the same status, in words, inside the layout."""
    template = request.app.template_engine.get_template("error.html")  # type: ignore[union-attr]
    user = request.scope.get("auth")
    html = template.render(
        title=APP_TITLES.get(status) or TITLES.get(status, "Error"),
        detail=detail,
        errors=errors,
        user=user if hasattr(user, "csrf_token") else None,
        csrf_field="_csrf",
        csrf_token=getattr(user, "csrf_token", ""),
        path=request.scope.get("path", ""),
    )
    return Response(html, status_code=status, media_type="text/html", headers=headers)


CLIENT_ERRORS = (OverflowError, UnicodeDecodeError, OutOfRange)
"""Raised while reading a request's values: the request is at fault (400)."""


REFUSED = ((Unprocessable, 422), (Conflict, 409), (Stale, 412))
"""How the API answers each refusal of the domain."""


def _refused_status(exc: Refused) -> int:
    return next(status for kind, status in REFUSED if isinstance(exc, kind))


def status_of(exc: BaseException) -> int:
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, Refused):
        return _refused_status(exc)
    if isinstance(exc, CLIENT_ERRORS):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, UNAVAILABLE):
        return 503
    return 500


def _not_found(request: Request, exc: NotFound) -> Response:
    """404: on /fhir naming the resource type at ``id``, on /v1 the ``<kind>_id`` field."""
    if _is_fhir(request):
        message = f"no such {exc.kind}"
        return error_response(request, 404, message, [FieldError("id", message, "not_found")])
    field = FieldError(f"{exc.kind}_id", "not found", "not_found")
    return error_response(request, 404, exc.detail, [field])


def handle_http(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc)
        detail = "The request is not valid"
        if exc.extra is None and exc.detail:
            detail = str(exc.detail)
        return error_response(request, 400, detail, errors)
    if isinstance(exc, ApiError):
        return error_response(request, exc.status_code, exc.detail, exc.errors, exc.headers)
    if isinstance(exc, NotFound):
        return _not_found(request, exc)
    if isinstance(exc, Refused):
        errors = [FieldError(f.field, f.message, f.code) for f in exc.faults]
        return error_response(request, _refused_status(exc), exc.detail, errors)
    if isinstance(exc, OutOfRange):
        return error_response(
            request, 400, str(exc), [FieldError(exc.field, str(exc), "out_of_range")]
        )
    if isinstance(exc, OverflowError):
        return error_response(
            request,
            400,
            "A date or number is beyond the range Belong can store",
            [FieldError("body", str(exc), "out_of_range")],
        )
    if isinstance(exc, UnicodeDecodeError):
        return error_response(
            request, 400, "The body is not UTF-8", [FieldError("body", "not UTF-8", "malformed")]
        )
    if isinstance(exc, UNAVAILABLE):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            request,
            503,
            "The database is not reachable; retry shortly",
            [],
            {"Retry-After": "5"},
        )
    if isinstance(exc, HTTPException):
        errors = [FieldError("body", exc.detail, "malformed")] if exc.status_code == 400 else []
        return error_response(request, exc.status_code, exc.detail, errors, exc.headers)
    log.error(
        "unhandled error on %s %s: %s",
        request.method,
        route_template(request.scope),
        error_name(exc),
        extra={"exception": safe_traceback(exc)},
    )
    return error_response(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "An unexpected error occurred", []
    )
