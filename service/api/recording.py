"""Recording a scored screening: the one write path /v1 and /fhir share.

One transaction stores the patient (created if new), the QuestionnaireResponse, each
screening, its Observations, and completes the caller's idempotency key, so a request
either lands whole or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response

from service.api.audit import audit_in, note
from service.api.errors import ApiError, FieldError
from service.api.observability import SCREENINGS
from service.domain.instruments import Instrument
from service.domain.scoring import Score
from service.fhir.screening import (
    ScreeningContext,
    StoredObservation,
    fhir_instant,
    observations,
    questionnaire_response,
)
from service.store.clients import Principal
from service.store.database import Database, utc_field, utcnow
from service.store.repository import ClinicStore

log = logging.getLogger("belong.recording")

CLOCK_SKEW = timedelta(minutes=5)
STALE_CLAIM = timedelta(minutes=2)
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


async def record(store: ClinicStore, submission: Submission, recorded_at: datetime) -> Recorded:
    """Write a submission inside the caller's transaction."""
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
    await store.put_patient(submission.patient_id, submission.profile, recorded_at)
    stored = await store.insert_questionnaire_response(
        id=submission.questionnaire_response_id,
        patient_id=submission.patient_id,
        identifier_system=submission.identifier_system,
        identifier_value=submission.identifier_value,
        authored_at=submission.completed_at,
        last_updated=recorded_at,
        resource=resource,
    )
    if not stored:
        raise ApiError(
            409,
            "A QuestionnaireResponse with this identifier is already stored",
            [FieldError("identifier", "already stored", "duplicate")],
        )
    by_screening: dict[str, list[StoredObservation]] = {}
    rows: list[dict[str, Any]] = []
    for (screening_id, scored), ctx in zip(submission.screenings, contexts, strict=True):
        band = scored.score.band
        await store.insert_screening(
            id=screening_id,
            patient_id=submission.patient_id,
            questionnaire_response_id=submission.questionnaire_response_id,
            instrument=scored.instrument.id,
            completed_at=submission.completed_at,
            created_at=recorded_at,
            encounter_id=submission.encounter_id,
            total=scored.score.total,
            band_code=band.code if band else None,
            positive=band.positive if band else None,
            answers=scored.answers,
            score=msgspec.to_builtins(scored.score),
            context=submission.context,
        )
        built = observations(scored.instrument, scored.answers, scored.score, ctx)
        by_screening[screening_id] = built
        rows.extend(
            {
                "id": o.id,
                "patient_id": submission.patient_id,
                "screening_id": screening_id,
                "position": position,
                "code_system": o.code_system,
                "code": o.code,
                "effective_at": submission.completed_at,
                "last_updated": recorded_at,
                "resource": msgspec.to_builtins(o.resource),
            }
            for position, o in enumerate(built)
        )
    await store.insert_observations(rows)
    return Recorded(submission, recorded_at, resource, by_screening)


Render = Callable[[Recorded, Any], tuple[int, bytes, dict[str, str]]]
"""(recorded, what ``prepare`` returned) -> (status, body, headers)."""
Prepare = Callable[[ClinicStore], Awaitable[Any]]


def resource_id(recorded: Recorded) -> str:
    """The id the response is about: the screening for /v1, the QuestionnaireResponse on
    /fhir (they are the same when one screening is recorded)."""
    screenings = recorded.submission.screenings
    if len(screenings) == 1 and recorded.submission.questionnaire_response is None:
        return screenings[0][0]
    return recorded.submission.questionnaire_response_id


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

    The key is claimed in its own committed transaction first, so a concurrent retry sees
    it in flight (409); the stored response is replayed for a completed key, and a key
    reused with a different body answers 422. Everything else happens in one transaction:
    ``prepare`` (reads the response needs), the writes, the key's completion and the audit
    event.
    """
    key = request.headers.get("idempotency-key") or None
    now = utcnow()
    if key is not None:
        if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
            raise ApiError(
                400,
                "Idempotency-Key must be 1-255 visible ASCII characters",
                [FieldError("Idempotency-Key", "malformed", "invalid")],
            )
        fingerprint = hashlib.sha256(await request.body()).hexdigest()
        async with db.begin() as conn:
            held = await ClinicStore(conn, principal.clinic_id).claim_idempotency_key(
                route, key, fingerprint, now, now - STALE_CLAIM
            )
        if held is not None:
            if held.fingerprint != fingerprint:
                raise ApiError(
                    422,
                    "This Idempotency-Key was used with a different request body",
                    [FieldError("Idempotency-Key", "reused with another body", "key_reused")],
                )
            if held.state != "done":
                raise ApiError(
                    409,
                    "A request with this Idempotency-Key is still being processed",
                    [FieldError("Idempotency-Key", "in flight", "in_flight")],
                    headers={"Retry-After": "1"},
                )
            note(request, held.resource_id, submission.patient_id)
            return Response(
                held.response,
                status_code=held.status_code,
                media_type=media_type,
                headers={**(held.response_headers or {}), "Idempotent-Replayed": "true"},
            )
    try:
        async with db.begin() as conn:
            store = ClinicStore(conn, principal.clinic_id)
            prepared = await prepare(store) if prepare is not None else None
            recorded = await record(store, submission, now)
            status, body, headers = render(recorded, prepared)
            if key is not None:
                await store.complete_idempotency_key(
                    route, key, status, body, headers, resource_id(recorded)
                )
            await audit_in(request, store, status, now)
    except BaseException:
        if key is not None:
            try:
                async with db.begin() as conn:
                    await ClinicStore(conn, principal.clinic_id).release_idempotency_key(route, key)
            except Exception:  # the claim goes stale and is taken over by a retry
                log.warning("could not release an idempotency claim", exc_info=True)
        raise
    for _, scored in submission.screenings:
        band = scored.score.band
        SCREENINGS.labels(scored.instrument.id, band.code if band else "none").inc()
    return Response(body, status_code=status, media_type=media_type, headers=headers)
