"""Recording a scored screening: the one write path /v1 and /fhir share.

One atomic write stores the idempotency key with its response, the patient (created if
new), the QuestionnaireResponse, each screening, its Observations and the audit event, so a
request either lands whole or not at all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response

from service.instruments.model import Instrument
from service.instruments.scoring import Score
from service.platform.audit import audit_event, mark_written, note
from service.platform.credentials import Principal
from service.platform.database import Database, utc_field, utcnow
from service.platform.errors import ApiError, FieldError
from service.platform.observability import SCREENINGS
from service.screenings.fhir import (
    ScreeningContext,
    StoredObservation,
    fhir_instant,
    observations,
    questionnaire_response,
)
from service.screenings.records import (
    AuditEvent,
    HeldKey,
    KeyRecord,
    ObservationRow,
    PatientContext,
    ScreeningRow,
    SubmissionRows,
    Written,
)
from service.screenings.repository import held_key, patient_context, write_submission

CLOCK_SKEW = timedelta(minutes=5)
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{0,255}$"
"""Visible ASCII; an empty header counts as no key."""


@dataclass(frozen=True, slots=True)
class ScoredScreening:
    """One instrument's part of a submission, validated and scored."""

    instrument: Instrument
    answers: dict[str, int]
    score: Score


@dataclass(frozen=True, slots=True)
class Submission:
    patient_id: str
    profile: dict[str, Any] | None
    completed_at: datetime
    encounter_id: str | None
    context: dict[str, Any]
    questionnaire_response_id: str
    questionnaire_response: dict[str, Any] | None
    """As received; None to build it from the (single) screening's answers."""
    identifier_system: str
    identifier_value: str | None
    screenings: Sequence[tuple[str, ScoredScreening]]
    """(screening id, scored screening) pairs."""


@dataclass(frozen=True, slots=True)
class Recorded:
    submission: Submission
    recorded_at: datetime
    questionnaire_response: dict[str, Any]
    """As stored, with Belong's id and meta."""
    observations: dict[str, list[StoredObservation]]
    """Screening id -> its Observations."""


def check_completed_at(completed_at: datetime, field: str, now: datetime) -> datetime:
    completed = utc_field(completed_at, field)
    if completed > now + CLOCK_SKEW:
        raise ApiError(
            422,
            "A screening cannot be completed in the future",
            [FieldError(field, "is in the future", "future_date")],
        )
    return completed


def build(submission: Submission, recorded_at: datetime) -> Recorded:
    """The FHIR resources a submission stores, with Belong's ids and meta."""
    contexts = [
        ScreeningContext(
            screening_id=screening_id,
            questionnaire_response_id=submission.questionnaire_response_id,
            patient_id=submission.patient_id,
            completed_at=submission.completed_at,
            recorded_at=recorded_at,
            encounter_id=submission.encounter_id,
        )
        for screening_id, _ in submission.screenings
    ]
    resource = submission.questionnaire_response
    if resource is None:
        scored = submission.screenings[0][1]
        resource = msgspec.to_builtins(
            questionnaire_response(scored.instrument, scored.answers, contexts[0])
        )
    meta = {**resource.get("meta", {}), "versionId": "1", "lastUpdated": fhir_instant(recorded_at)}
    resource = {**resource, "id": submission.questionnaire_response_id, "meta": meta}
    by_screening = {
        screening_id: observations(scored.instrument, scored.answers, scored.score, ctx)
        for (screening_id, scored), ctx in zip(submission.screenings, contexts, strict=True)
    }
    return Recorded(submission, recorded_at, resource, by_screening)


def submission_rows(
    recorded: Recorded, key: KeyRecord | None, audit: AuditEvent | None
) -> SubmissionRows:
    """What ``write_submission`` stores: the recorded resources, the key and the audit."""
    submission = recorded.submission
    screenings = []
    for screening_id, scored in submission.screenings:
        band = scored.score.band
        screenings.append(
            ScreeningRow(
                id=screening_id,
                instrument=scored.instrument.id,
                total=scored.score.total,
                band_code=band.code if band else None,
                positive=band.positive if band else None,
                answers=scored.answers,
                score=scored.score,
            )
        )
    return SubmissionRows(
        patient_id=submission.patient_id,
        profile=submission.profile,
        recorded_at=recorded.recorded_at,
        completed_at=submission.completed_at,
        encounter_id=submission.encounter_id,
        context=submission.context,
        questionnaire_response_id=submission.questionnaire_response_id,
        identifier_system=submission.identifier_system,
        identifier_value=submission.identifier_value,
        questionnaire_response=recorded.questionnaire_response,
        screenings=screenings,
        observations=[
            ObservationRow(
                id=o.id,
                screening_id=screening_id,
                position=position,
                code_system=o.code_system,
                code=o.code,
                resource=o.resource,
            )
            for screening_id, built in recorded.observations.items()
            for position, o in enumerate(built)
        ],
        key=key,
        audit=audit,
    )


Render = Callable[[Recorded, Any], tuple[int, bytes, dict[str, str]]]
"""(recorded, what ``prepare`` returned) -> (status, body, headers)."""
Prepare = Callable[[PatientContext], Awaitable[Any]]


def resource_id(recorded: Recorded) -> str:
    """The id the response is about: the screening for /v1, the QuestionnaireResponse on
    /fhir (they are the same when one screening is recorded)."""
    screenings = recorded.submission.screenings
    if len(screenings) == 1 and recorded.submission.questionnaire_response is None:
        return screenings[0][0]
    return recorded.submission.questionnaire_response_id


async def idempotency(request: Request[Any, Any, Any]) -> tuple[str | None, str]:
    """The request's ``Idempotency-Key`` (None without one) and its body's fingerprint."""
    key = request.headers.get("idempotency-key") or None
    if key is None:
        return None, ""
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        raise ApiError(
            400,
            "Idempotency-Key must be 1-255 visible ASCII characters",
            [FieldError("Idempotency-Key", "malformed", "invalid")],
        )
    return key, hashlib.sha256(await request.body()).hexdigest()


async def record_once(
    request: Request[Any, Any, Any],
    db: Database,
    principal: Principal,
    route: str,
    submission: Submission,
    render: Render,
    media_type: str,
    prepare: Prepare | None = None,
) -> Response[bytes]:
    """Record the submission, honouring an ``Idempotency-Key`` header.

    ``prepare`` gets the patient's stored context (one read, which also finds a key already
    used) and computes what ``render`` needs. The write is one atomic step storing the key
    with the rendered response, the submission and the audit event; a key stored first by a
    concurrent request means nothing of this one is stored and that response is replayed. A
    key reused with a different body answers 422.
    """
    key, fingerprint = await idempotency(request)
    now = utcnow()
    prepared = None
    if prepare is not None:
        context = await patient_context(
            db, principal.clinic_id, submission.patient_id, (route, key) if key else None
        )
        if context.held is not None:
            return _replay(request, context.held, fingerprint, submission, media_type)
        prepared = await prepare(context)
    recorded = build(submission, now)
    status, body, headers = render(recorded, prepared)
    stored_key = None
    if key is not None:
        stored_key = KeyRecord(
            route, key, fingerprint, status, body, headers, resource_id(recorded)
        )
    audit = audit_event(request, status, now)
    rows = submission_rows(recorded, stored_key, audit)
    written = await write_submission(db, principal.clinic_id, rows)
    if written is Written.KEY_TAKEN:
        assert key is not None
        held = await held_key(db, principal.clinic_id, route, key)
        if held is None:  # taken, then gone: only a purge between the two reads does that
            raise _in_flight()
        return _replay(request, held, fingerprint, submission, media_type)
    if written is Written.IDENTIFIER_TAKEN:
        raise ApiError(
            409,
            "A QuestionnaireResponse with this identifier is already stored",
            [FieldError("identifier", "already stored", "duplicate")],
        )
    if audit is not None:
        mark_written(request)
    for _, scored in submission.screenings:
        band = scored.score.band
        SCREENINGS.labels(scored.instrument.id, band.code if band else "none").inc()
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def _in_flight() -> ApiError:
    return ApiError(
        409,
        "A request with this Idempotency-Key is still being processed",
        [FieldError("Idempotency-Key", "in flight", "in_flight")],
        headers={"Retry-After": "1"},
    )


def _replay(
    request: Request[Any, Any, Any],
    held: HeldKey,
    fingerprint: str,
    submission: Submission,
    media_type: str,
) -> Response[bytes]:
    """The stored response for a retry with the same key and body."""
    if held.fingerprint != fingerprint:
        raise ApiError(
            422,
            "This Idempotency-Key was used with a different request body",
            [FieldError("Idempotency-Key", "reused with another body", "key_reused")],
        )
    if held.state != "done" or held.response is None or held.status_code is None:
        raise _in_flight()
    note(request, held.resource_id, submission.patient_id)
    return Response(
        held.response,
        status_code=held.status_code,
        media_type=media_type,
        headers={**(held.response_headers or {}), "Idempotent-Replayed": "true"},
    )
