"""Recording a scored screening, the one write path /v1 and /fhir share, and reading what
was stored.

One atomic write stores the idempotency key with its response, the patient (created if
new), the QuestionnaireResponse, each screening, its Observations and the audit event, so a
request either lands whole or not at all. The write and the context read before it run on
the driver's fast path (service/screenings/repository.py), outside any transaction block.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.engine import Row

from service.directory.service import DirectoryCache
from service.fhir.search import token_matches
from service.fhir.types import Reference, StoredJson
from service.instruments.model import Instrument, Severity, Signal
from service.instruments.scoring import Score
from service.instruments.service import Catalog
from service.matching.needs import ScreeningSummary
from service.matching.service import Recommendations, recommend
from service.patients.model import PatientProfile
from service.platform.audit import AuditEvent
from service.platform.caller import Caller
from service.platform.database import Database, utc_field
from service.platform.lookup import found
from service.platform.tables import ENTERED_IN_ERROR
from service.screenings.fhir import (
    CATEGORY_CODES,
    ScreeningContext,
    StoredObservation,
    fhir_instant,
    observations,
    questionnaire_response,
)
from service.screenings.records import (
    Correction,
    HeldKey,
    KeyRecord,
    ObservationRow,
    PatientContext,
    ScreeningRow,
    SubmissionRows,
    Written,
)
from service.screenings.repository import (
    ObservationQuery,
    QuestionnaireResponseQuery,
    ScreeningStore,
    held_key,
    patient_context,
    search_observations,
    write_submission,
)

CLOCK_SKEW = timedelta(minutes=5)
CORRECTED = "corrected"
CREATED = 201
"""The status a recorded submission is answered with, and replayed with for its key."""


class Refusal(Exception):
    """A submission the screenings refuse: ``detail`` says why, naming ``field``; answered
    with ``status``."""

    detail: str
    field: str
    message: str
    code: str
    status = 409

    def __init__(self) -> None:
        super().__init__(self.detail)


class CompletedInFuture(Refusal):
    detail = "A screening cannot be completed in the future"
    message, code = "is in the future", "future_date"
    status = 422

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__()


class KeyReused(Refusal):
    detail = "This Idempotency-Key was used with a different request body"
    field, message, code = "Idempotency-Key", "reused with another body", "key_reused"
    status = 422


class KeyInFlight(Refusal):
    """Retry shortly: the first request with this key has not finished."""

    detail = "A request with this Idempotency-Key is still being processed"
    field, message, code = "Idempotency-Key", "in flight", "in_flight"


class IdentifierTaken(Refusal):
    detail = "A QuestionnaireResponse with this identifier is already stored"
    field, message, code = "identifier", "already stored", "duplicate"


class VersionConflict(Refusal):
    detail = "The QuestionnaireResponse has a newer version than If-Match names"
    field, message, code = "If-Match", "not the current version", "conflict"
    status = 412


class InstrumentsChanged(Refusal):
    detail = "A correction must score the instruments its response was scored for"
    field, message, code = "QuestionnaireResponse.questionnaire", "other instruments", "invalid"
    status = 422


class PatientChanged(Refusal):
    detail = "A correction cannot move a response to another patient"
    field, message, code = "QuestionnaireResponse.subject", "another patient", "invalid"
    status = 422


class LinkSpent(Refusal):
    """The patient's link was used (or revoked, or expired) before this answer landed."""

    detail = "This link was already used, or it has ended"
    field, message, code = "link", "used or ended", "gone"
    status = 410


class AmbiguousMatch(Exception):
    """A conditional create whose identifier matches more than one stored response."""


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
    by_patient: bool = False
    """Answered by the patient themselves (their own link): the patient is the built
    QuestionnaireResponse's author and source."""


@dataclass(frozen=True, slots=True)
class Recorded:
    submission: Submission
    recorded_at: datetime
    questionnaire_response: dict[str, Any]
    """As stored, with Belong's id and meta."""
    observations: dict[str, list[StoredObservation]]
    """Screening id -> its Observations."""


@dataclass(frozen=True, slots=True)
class KeyUse:
    """The ``Idempotency-Key`` a request came with: held under ``route``, with its body's
    fingerprint."""

    route: str
    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Stored:
    """A submission recorded: the answer's body and headers (its status is ``CREATED``)."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Existing:
    """The stored QuestionnaireResponse a conditional create matched."""

    id: str
    patient_id: str
    resource: dict[str, Any]

    @property
    def version(self) -> str:
        return version_of(self.resource)


@dataclass(frozen=True, slots=True)
class Amendment:
    """A stored QuestionnaireResponse re-sent: amended (re-scored), or entered-in-error."""

    resource: dict[str, Any]
    """As received."""
    patient_id: str | None
    """The subject's id; None when an entered-in-error response names none."""
    completed_at: datetime | None
    """None when entered-in-error: the stored time stays."""
    scored: Sequence[ScoredScreening]
    """Empty when entered-in-error."""
    expected_version: str | None = None
    """The version ``If-Match`` names, when sent."""

    @property
    def entered_in_error(self) -> bool:
        return not self.scored


Render = Callable[[Recorded, Any], tuple[bytes, dict[str, str]]]
"""(recorded, what ``prepare`` returned) -> (body, headers) of the answer."""
Prepare = Callable[[PatientContext], Awaitable[Any]]


def check_completed_at(completed_at: datetime, field: str, now: datetime) -> datetime:
    """The completion time in UTC; :class:`CompletedInFuture` beyond the clock skew."""
    completed = utc_field(completed_at, field)
    if completed > now + CLOCK_SKEW:
        raise CompletedInFuture(field)
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
            by_patient=submission.by_patient,
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


def version_of(resource: dict[str, Any]) -> str:
    """A stored resource's ``meta.versionId`` (1 for one stored before versions were)."""
    return str(resource.get("meta", {}).get("versionId", "1"))


def _next_meta(resource: dict[str, Any], now: datetime) -> dict[str, str]:
    """The versionId and lastUpdated of the version after ``resource``'s."""
    return {"versionId": str(int(version_of(resource)) + 1), "lastUpdated": fhir_instant(now)}


def _as_next(resource: dict[str, Any], after: dict[str, Any], now: datetime) -> dict[str, Any]:
    """``resource`` as the version after ``after``."""
    return {**resource, "meta": {**resource.get("meta", {}), **_next_meta(after, now)}}


def _withdrawn(resource: dict[str, Any], now: datetime) -> dict[str, Any]:
    return _as_next({**resource, "status": ENTERED_IN_ERROR}, resource, now)


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """What a client says in a resource: all but Belong's id and meta."""
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


def corrected(
    current: Row[Any],
    stored: Sequence[Row[Any]],
    stored_observations: Sequence[Row[Any]],
    amendment: Amendment,
    now: datetime,
) -> Correction:
    """The new versions a correction stores. The Observations keep their ids, so what
    refers to them (derivedFrom, hasMember, a ServiceRequest's reasonReference) still
    does; one the correction no longer yields is entered-in-error."""
    resource = _as_next({**amendment.resource, "id": current.id}, current.resource, now)
    previous = {o.id: o for o in stored_observations}
    if amendment.entered_in_error:
        withdrawn = [_observation_row(o, _withdrawn(o.resource, now)) for o in stored_observations]
        return Correction(
            questionnaire_response_id=current.id,
            patient_id=current.patient_id,
            status=ENTERED_IN_ERROR,
            completed_at=current.authored_at,
            recorded_at=now,
            questionnaire_response=resource,
            screenings=[
                ScreeningRow(
                    s.id, s.instrument, s.total, s.band_code, s.positive, s.answers, s.score
                )
                for s in stored
            ],
            observations=withdrawn,
        )
    assert amendment.completed_at is not None
    by_instrument = {s.instrument: s for s in stored}
    if {scored.instrument.id for scored in amendment.scored} != set(by_instrument):
        raise InstrumentsChanged()
    screening_rows, observation_rows = [], []
    for scored in amendment.scored:
        screening = by_instrument[scored.instrument.id]
        context = ScreeningContext(
            screening_id=screening.id,
            questionnaire_response_id=current.id,
            patient_id=current.patient_id,
            completed_at=amendment.completed_at,
            recorded_at=now,
            encounter_id=screening.encounter_id,
        )
        screening_rows.append(_screening_row(screening.id, scored))
        built = observations(scored.instrument, scored.answers, scored.score, context)
        for position, o in enumerate(built):
            fresh = msgspec.to_builtins(o.resource)
            old = previous.pop(o.id, None)
            if old is not None:
                fresh = _as_next({**fresh, "status": CORRECTED}, old.resource, now)
            observation_rows.append(
                ObservationRow(o.id, screening.id, position, o.code_system, o.code, fresh)
            )
    observation_rows.extend(
        _observation_row(o, _withdrawn(o.resource, now)) for o in previous.values()
    )
    return Correction(
        questionnaire_response_id=current.id,
        patient_id=current.patient_id,
        status=CORRECTED,
        completed_at=amendment.completed_at,
        recorded_at=now,
        questionnaire_response=resource,
        screenings=screening_rows,
        observations=observation_rows,
    )


def _screening_row(screening_id: str, scored: ScoredScreening) -> ScreeningRow:
    score, band = scored.score, scored.score.band
    return ScreeningRow(
        id=screening_id,
        instrument=scored.instrument.id,
        total=score.total,
        band_code=band.code if band else None,
        positive=band.positive if band else None,
        answers=scored.answers,
        score=score,
    )


def _observation_row(stored: Row[Any], resource: dict[str, Any]) -> ObservationRow:
    return ObservationRow(
        stored.id, stored.screening_id, stored.position, stored.code_system, stored.code, resource
    )


def submission_rows(
    recorded: Recorded, key: KeyRecord | None, audit: AuditEvent | None
) -> SubmissionRows:
    """What ``write_submission`` stores: the recorded resources, the key and the audit."""
    submission = recorded.submission
    screenings = [
        _screening_row(screening_id, scored) for screening_id, scored in submission.screenings
    ]
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


def resource_id(recorded: Recorded) -> str:
    """The id the response is about: the screening for /v1, the QuestionnaireResponse on
    /fhir (they are the same when one screening is recorded)."""
    screenings = recorded.submission.screenings
    if len(screenings) == 1 and recorded.submission.questionnaire_response is None:
        return screenings[0][0]
    return recorded.submission.questionnaire_response_id


async def record_submission(
    db: Database,
    clinic_id: uuid.UUID,
    submission: Submission,
    now: datetime,
    key: KeyUse | None,
    render: Render,
    audit: AuditEvent | None,
    prepare: Prepare | None = None,
    spending: str | None = None,
) -> Stored | HeldKey:
    """Record the submission once per ``key``: :class:`Stored`, or the :class:`HeldKey` to
    replay when a request with the same key and body was recorded first.

    ``prepare`` gets the patient's stored context (one read, which also finds a key already
    used) and computes what ``render`` needs. The write is one atomic step storing the key
    with the rendered answer, the submission and ``audit``; a key stored first by a
    concurrent request means nothing of this one is stored and that answer is replayed.
    ``spending`` is the hash of the patient's link the answers came by: it is spent in the
    write's transaction, so of concurrent answers by one link exactly one is stored.
    Refused: :class:`KeyReused` (the key came with another body), :class:`KeyInFlight`,
    :class:`IdentifierTaken`, :class:`LinkSpent`.
    """
    prepared = None
    if prepare is not None:
        held = (key.route, key.key) if key is not None else None
        context = await patient_context(db, clinic_id, submission.patient_id, held)
        if context.held is not None:
            assert key is not None
            return _replayable(context.held, key.fingerprint)
        prepared = await prepare(context)
    recorded = build(submission, now)
    body, headers = render(recorded, prepared)
    stored_key = None
    if key is not None:
        stored_key = KeyRecord(
            key.route, key.key, key.fingerprint, CREATED, body, headers, resource_id(recorded)
        )
    written = await write_submission(
        db, clinic_id, submission_rows(recorded, stored_key, audit), spending
    )
    if written is Written.LINK_GONE:
        raise LinkSpent()
    if written is Written.KEY_TAKEN:
        assert key is not None
        taken = await held_key(db, clinic_id, key.route, key.key)
        if taken is None:  # taken, then gone: only a purge between the two reads does that
            raise KeyInFlight()
        return _replayable(taken, key.fingerprint)
    if written is Written.IDENTIFIER_TAKEN:
        raise IdentifierTaken()
    return Stored(body, headers)


def _replayable(held: HeldKey, fingerprint: str) -> HeldKey:
    """The held key, if its answer may be replayed to a retry with this body."""
    if held.fingerprint != fingerprint:
        raise KeyReused()
    if held.state != "done" or held.response is None or held.status_code is None:
        raise KeyInFlight()
    return held


async def screening_recommendations(
    db: Database,
    clinic_id: uuid.UUID,
    cache: DirectoryCache,
    catalog: Catalog,
    context: PatientContext,
    submission: Submission,
    profile: PatientProfile | None,
) -> Recommendations:
    """The services matched to the patient's needs with this screening counted in;
    ``profile`` as sent with it, else the stored one."""
    screening_id, scored = submission.screenings[0]
    instrument, score = scored.instrument, scored.score
    band = score.band
    new = ScreeningSummary(
        screening_id=screening_id,
        instrument=instrument.id,
        instrument_title=instrument.definition.short_title,
        construct=instrument.definition.construct,
        completed_at=submission.completed_at,
        total=score.total,
        positive=bool(band and band.positive),
        signal=Signal(band.signal) if band and band.signal else None,
        severity=Severity(band.severity) if band else Severity.NONE,
        band_label=band.label if band else None,
    )
    if profile is None:
        stored = context.profile
        profile = msgspec.convert(stored, PatientProfile) if stored else PatientProfile()
    return await recommend(db, clinic_id, cache, catalog, context.latest, profile, extra=[new])


class Screenings:
    """Stored screenings, QuestionnaireResponses and Observations, read in the caller's
    clinic; and the FHIR conditional create of a QuestionnaireResponse."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    async def context(self, patient_id: str) -> PatientContext:
        """The patient's stored profile and newest screening of each instrument (one read,
        on the driver's fast path)."""
        return await patient_context(self.caller.db, self.caller.clinic_id, patient_id)

    async def screening(self, screening_id: str) -> tuple[Row[Any], list[Row[Any]]]:
        """The screening and its Observations, in order."""
        async with self.caller.transaction(ScreeningStore) as store:
            row = found(
                await store.get_screening(screening_id),
                "screening",
                screening_id,
                "No such screening",
            )
            return row, await store.observations_of([screening_id])

    async def questionnaire_response(self, qr_id: str) -> Row[Any]:
        async with self.caller.transaction(ScreeningStore) as store:
            row = await store.get_questionnaire_response(qr_id)
        return found(row, "QuestionnaireResponse", qr_id)

    async def observation(self, observation_id: str) -> Row[Any]:
        async with self.caller.transaction(ScreeningStore) as store:
            row = await store.get_observation(observation_id)
        return found(row, "Observation", observation_id)

    async def search_observations(
        self, query: ObservationQuery, categories: Sequence[Sequence[tuple[str | None, str]]]
    ) -> tuple[list[tuple[StoredJson, datetime]], int]:
        """A page of Observations, each with its sort value, and how many match;
        ``categories`` each a repeat of the parameter, every one of which must match, as
        (system or None, code) pairs, any of which may match."""
        if not all(
            any(
                token_matches(token, system, code)
                for token in tokens
                for code, system in CATEGORY_CODES.items()
            )
            for tokens in categories
        ):
            return [], 0  # every Observation Belong stores has exactly these categories
        return await search_observations(self.caller.db, self.caller.clinic_id, query)

    async def search_questionnaire_responses(
        self, query: QuestionnaireResponseQuery
    ) -> tuple[list[tuple[StoredJson, datetime]], int]:
        """A page of QuestionnaireResponses, each with its authored time, and how many
        match."""
        async with self.caller.transaction(ScreeningStore) as store:
            return await store.search_questionnaire_responses(query)

    async def derived_from(
        self, found_observations: Sequence[StoredJson], types: Sequence[str]
    ) -> list[tuple[str, StoredJson]]:
        """What these Observations are derived from (``_include=Observation:derived-from``),
        of the resource ``types`` asked for: (resource type, resource) pairs."""
        wanted: dict[str, set[str]] = {kind: set() for kind in types}
        for observation in found_observations:
            for reference in msgspec.json.decode(observation.json, type=_Derivation).derivedFrom:
                kind, _, ident = (reference.reference or "").partition("/")
                if kind in wanted:
                    wanted[kind].add(ident)
        async with self.caller.transaction(ScreeningStore) as store:
            return await store.derived_from(
                sorted(wanted.get("QuestionnaireResponse", ())),
                sorted(wanted.get("Observation", ())),
            )

    async def matching_response(self, system: str | None, value: str) -> Existing | None:
        """The one stored QuestionnaireResponse a conditional create names (the system None
        for any), None for none; :class:`AmbiguousMatch` for several."""
        existing = await self._with_identifier(system, value)
        if len(existing) > 1:
            raise AmbiguousMatch()
        return existing[0] if existing else None

    async def create_questionnaire_response(
        self,
        submission: Submission,
        now: datetime,
        key: KeyUse | None,
        render: Render,
        audit: AuditEvent | None,
    ) -> Stored | HeldKey | Existing:
        """Record a received QuestionnaireResponse; when its identifier is stored already
        (a retry, or a concurrent conditional create) the one stored with it."""
        try:
            return await record_submission(
                self.caller.db, self.caller.clinic_id, submission, now, key, render, audit
            )
        except IdentifierTaken:
            if not submission.identifier_value:
                raise
            existing = await self._with_identifier(
                submission.identifier_system, submission.identifier_value
            )
            if len(existing) != 1:
                raise
            return existing[0]

    async def correct_questionnaire_response(
        self, qr_id: str, amendment: Amendment, now: datetime, audit: AuditEvent | None
    ) -> tuple[Existing, bool]:
        """Store the amendment as the response's next version, its screenings re-scored
        (or entered-in-error) with ``audit``, in one transaction: the response as now
        stored, and whether a version was made (a re-sent identical correction makes none).
        Refused: :class:`VersionConflict`, :class:`PatientChanged`,
        :class:`InstrumentsChanged`."""
        async with self.caller.transaction(ScreeningStore) as store:
            row = found(
                await store.lock_questionnaire_response(qr_id), "QuestionnaireResponse", qr_id
            )
            current = Existing(row.id, row.patient_id, row.resource)
            expected = amendment.expected_version
            if expected is not None and expected != current.version:
                raise VersionConflict()
            if amendment.patient_id not in (None, row.patient_id):
                raise PatientChanged()
            if _content(row.resource) == _content(amendment.resource):
                return current, False
            stored = await store.screenings_of_response(qr_id)
            stored_observations = await store.observations_of([s.id for s in stored])
            correction = corrected(row, stored, stored_observations, amendment, now)
            await store.save_correction(correction, audit)
        return Existing(row.id, row.patient_id, correction.questionnaire_response), True

    async def _with_identifier(self, system: str | None, value: str) -> list[Existing]:
        async with self.caller.transaction(ScreeningStore) as store:
            rows = await store.find_questionnaire_responses(system, value)
        return [Existing(row.id, row.patient_id, row.resource) for row in rows]


class _Derivation(msgspec.Struct):
    """What a stored Observation is derived from (nothing else of it is decoded)."""

    derivedFrom: list[Reference] = []
