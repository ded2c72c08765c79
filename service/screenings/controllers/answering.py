"""What both screenings controllers share: the ``Idempotency-Key`` header read, the
screenings' refusals answered, and the answer to a recorded (or replayed) submission."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from litestar import Request, Response

from service.platform.audit import AuditEvent, mark_written, note
from service.platform.errors import ApiError, FieldError
from service.platform.observability import SCREENINGS
from service.screenings.records import HeldKey
from service.screenings.service import (
    CREATED,
    KeyInFlight,
    KeyUse,
    Refusal,
    Stored,
    Submission,
)

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{0,255}$"
"""Visible ASCII; an empty header counts as no key."""


async def key_use(request: Request[Any, Any, Any], route: str) -> KeyUse | None:
    """The request's ``Idempotency-Key`` (None without one) with its body's fingerprint."""
    key = request.headers.get("idempotency-key") or None
    if key is None:
        return None
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        raise ApiError(
            400,
            "Idempotency-Key must be 1-255 visible ASCII characters",
            [FieldError("Idempotency-Key", "malformed", "invalid")],
        )
    return KeyUse(route, key, hashlib.sha256(await request.body()).hexdigest())


def refused(exc: Refusal) -> ApiError:
    status = exc.status
    headers = {"Retry-After": "1"} if isinstance(exc, KeyInFlight) else None
    return ApiError(status, exc.detail, [FieldError(exc.field, exc.message, exc.code)], headers)


def answer(
    request: Request[Any, Any, Any],
    outcome: Stored | HeldKey,
    submission: Submission,
    audit: AuditEvent | None,
    media_type: str,
) -> Response[bytes]:
    """201 with what was stored (its audit event among it, when there was one to write);
    or the first answer for this key, replayed."""
    if isinstance(outcome, HeldKey):
        note(request, outcome.resource_id, submission.patient_id)
        assert outcome.response is not None and outcome.status_code is not None
        return Response(
            outcome.response,
            status_code=outcome.status_code,
            media_type=media_type,
            headers={**(outcome.response_headers or {}), "Idempotent-Replayed": "true"},
        )
    if audit is not None:
        mark_written(request)
    for _, scored in submission.screenings:
        band = scored.score.band
        SCREENINGS.labels(scored.instrument.id, band.code if band else "none").inc()
    return Response(
        outcome.body, status_code=CREATED, media_type=media_type, headers=outcome.headers
    )
