"""Audit of every read and write of patient data.

A route that touches patient data declares ``opt["audit"] = (action, resource type)``.
The handler may name the resource and patient with :func:`note`; otherwise the path's
``patient_id`` is used. The event is written before the response starts, for failures as
well as successes, so no patient data leaves without its audit record; if the audit
cannot be written the caller gets 503 instead of the data.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.platform.credentials import Principal
from service.platform.database import UNAVAILABLE, new_id, utcnow
from service.platform.errors import error_response, status_of
from service.platform.observability import error_name, safe_traceback
from service.platform.params import FHIR_ID

log = logging.getLogger("belong.audit")

STATE_KEY = "belong_audit"
FHIR_ID_TEXT = re.compile(FHIR_ID)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who did what to which patient's data, and how it ended."""

    client_id: uuid.UUID | None
    action: str
    resource_type: str
    resource_id: str | None
    patient_id: str | None
    status_code: int
    at: datetime
    user_id: uuid.UUID | None = None
    ehr_id: uuid.UUID | None = None
    """The registered EHR acting: a SMART launch, before any user is signed in."""
    detail: str | None = None
    """Why a launch was refused (safe to show: no token, code or patient data)."""
    link_hash: str | None = None
    """The secret link acting (its token's hash), when no client, user or EHR is."""
    id: uuid.UUID = field(default_factory=new_id)

    @property
    def outcome(self) -> str:
        return "success" if self.status_code < 400 else "failure"

    def columns(self) -> dict[str, Any]:
        """The audit_events row, but for its clinic."""
        return {
            "id": self.id,
            "client_id": self.client_id,
            "user_id": self.user_id,
            "ehr_id": self.ehr_id,
            "link_hash": self.link_hash,
            "action": self.action,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "patient_id": self.patient_id,
            "outcome": self.outcome,
            "status_code": self.status_code,
            "recorded_at": self.at,
            "detail": self.detail,
        }


@dataclass(slots=True)
class AuditNote:
    resource_id: str | None = None
    patient_id: str | None = None
    written: bool = False
    """Already written by the handler's own write (see :func:`mark_written`)."""


def note(request: Request[Any, Any, Any], resource_id: str | None, patient_id: str | None) -> None:
    request.scope.setdefault("state", {})[STATE_KEY] = AuditNote(resource_id, patient_id)


def audit_event(request: Request[Any, Any, Any], status: int, at: datetime) -> AuditEvent | None:
    """The event for a handler that writes its own audit in its write; None when the route
    is not audited or nothing was noted."""
    spec = request.route_handler.opt.get("audit")
    found = request.scope.get("state", {}).get(STATE_KEY)
    principal = request.scope.get("user")
    if spec is None or found is None or not isinstance(principal, Principal):
        return None
    action, resource_type = spec
    return AuditEvent(
        client_id=principal.client_id,
        user_id=principal.user_id,
        link_hash=principal.link_hash,
        action=action,
        resource_type=resource_type,
        resource_id=found.resource_id,
        patient_id=found.patient_id,
        status_code=status,
        at=at,
    )


def mark_written(request: Request[Any, Any, Any]) -> None:
    """The handler's own write stored the audit event: the middleware leaves it alone."""
    found = request.scope.get("state", {}).get(STATE_KEY)
    if found is not None:
        found.written = True


def audited(action: str, resource_type: str) -> dict[str, Any]:
    return {"audit": (action, resource_type)}


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        spec = handler.opt.get("audit") if handler is not None else None
        # A secret link's page (no account) sets its principal once the link is resolved,
        # so the principal is read when the event is written.
        by_link = handler is not None and bool(handler.opt.get("exclude_from_auth"))
        if spec is None or not (by_link or isinstance(scope.get("user"), Principal)):
            await self.app(scope, receive, send)
            return
        written = False

        def already_written() -> bool:
            found = scope.get("state", {}).get(STATE_KEY)
            if found is not None and found.written:
                return True
            return not isinstance(scope.get("user"), Principal)  # an unknown or ended link

        async def write(status: int) -> None:
            nonlocal written
            written = True
            action, resource_type = spec
            principal = scope["user"]
            found = scope.get("state", {}).get(STATE_KEY) or AuditNote()
            # Path values are unvalidated when the request failed early: keep only ids.
            path_params = {
                k: v
                for k, v in scope.get("path_params", {}).items()
                if isinstance(v, str) and FHIR_ID_TEXT.fullmatch(v)
            }
            patient_id = found.patient_id or path_params.get("patient_id")
            resource_id = found.resource_id
            if resource_id is None and action != "search":
                resource_id = next((v for k, v in path_params.items() if k.endswith("_id")), None)
            event = AuditEvent(
                client_id=principal.client_id,
                user_id=principal.user_id,
                link_hash=principal.link_hash,
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                patient_id=patient_id,
                status_code=status,
                at=utcnow(),
            )
            await scope["app"].state.audit_writer.write(principal.clinic_id, event)

        withheld = False

        async def send_after_audit(message: Message) -> None:
            nonlocal withheld
            if withheld:
                return  # the rest of the response the 503 replaced
            if message["type"] == "http.response.start" and not written and not already_written():
                try:
                    await write(message["status"])
                except Exception as error:
                    if isinstance(error, UNAVAILABLE):
                        log.warning("audit event not written (database unavailable); withheld")
                    else:
                        log.error(
                            "audit event could not be written; withholding the response: %s",
                            error_name(error),
                            extra={"exception": safe_traceback(error)},
                        )
                    # Answered here: raising would be an error after the response started.
                    withheld = True
                    await _audit_unavailable(scope, receive, send)
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_after_audit)
        except Exception as exc:
            if not written and not already_written():
                try:
                    await write(status_of(exc))
                except Exception as error:
                    log.error(
                        "audit event for a failed request could not be written: %s",
                        error_name(error),
                        extra={"exception": safe_traceback(error)},
                    )
            raise


async def _audit_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    """503 in place of a response whose audit event could not be stored."""
    request: Request[Any, Any, Any] = Request(scope, receive)
    response = error_response(
        request,
        503,
        "The audit trail is unavailable; nothing was returned",
        [],
        {"Retry-After": "5"},
    )
    await response.to_asgi_response(app=None, request=request)(scope, receive, send)
