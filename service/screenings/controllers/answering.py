"""What the screenings controllers share: the ``Idempotency-Key`` header read, the
screenings' refusals answered, a /v1 screening request validated and scored (the API's and
the app's entry form), and the answer to a recorded (or replayed) submission."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response

from service.instruments.service import Answers, Catalog, Unscorable, score_answers
from service.patients.model import PainCondition, PatientId, PatientProfile
from service.platform.audit import AuditEvent, mark_written, note
from service.platform.errors import ApiError, FieldError
from service.platform.observability import SCREENINGS
from service.platform.params import ID_PATTERN
from service.screenings.records import HeldKey
from service.screenings.service import (
    CREATED,
    KeyInFlight,
    KeyUse,
    Refusal,
    ScoredScreening,
    Stored,
    Submission,
    check_completed_at,
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


EncounterId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
InstrumentRef = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class ScreeningRequest(msgspec.Struct, forbid_unknown_fields=True):
    patient_id: PatientId
    instrument: InstrumentRef
    completed_at: Annotated[
        AwareDatetime,
        msgspec.Meta(description="When the patient finished, with a UTC offset; not in the future"),
    ]
    answers: Answers
    encounter_id: EncounterId | None = None
    pain_conditions: Annotated[list[PainCondition], msgspec.Meta(max_length=6)] | None = None
    """Context for this screening; stored with it."""
    profile: PatientProfile | None = None
    """The patient's matching profile, stored as by PUT /v1/patients/{patient_id}."""


def screening_submission(
    data: ScreeningRequest, catalog: Catalog, screening_id: str, now: datetime
) -> Submission:
    """The request validated and scored with the catalog: what one screening records."""
    instrument = catalog.usable(data.instrument, field="instrument")
    try:
        accepted, score = score_answers(instrument, data.answers)
        completed_at = check_completed_at(data.completed_at, "completed_at", now)
    except Unscorable as exc:
        raise ApiError(422, exc.detail, exc.problems) from exc
    except Refusal as exc:
        raise refused(exc) from exc
    return Submission(
        patient_id=data.patient_id,
        profile=msgspec.to_builtins(data.profile) if data.profile is not None else None,
        completed_at=completed_at,
        encounter_id=data.encounter_id,
        context={"pain_conditions": [c.value for c in data.pain_conditions or []]},
        questionnaire_response_id=screening_id,
        questionnaire_response=None,
        identifier_system="",
        identifier_value=None,
        screenings=[(screening_id, ScoredScreening(instrument, accepted, score))],
    )
