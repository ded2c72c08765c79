"""Screenings: answers in, score and FHIR Observations out, stored once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, PathParameter

from service.api.audit import audited, note
from service.api.auth import scoped
from service.api.body import decode
from service.api.catalog import Catalog
from service.api.errors import ApiError, FieldError
from service.api.params import ID_PATTERN
from service.api.recommend import Recommendations, recommend
from service.api.recording import (
    IDEMPOTENCY_KEY_PATTERN,
    Recorded,
    ScoredScreening,
    Submission,
    check_completed_at,
    record_once,
)
from service.api.v1.instruments import Answers, score_answers
from service.domain.instruments import Instrument, Severity, Signal
from service.domain.needs import ScreeningSummary
from service.domain.patients import PainCondition, PatientId, PatientProfile
from service.domain.scoring import Score
from service.fhir.types import Observation
from service.store.clients import Principal
from service.store.database import Database, new_id, utcnow
from service.store.records import PatientContext
from service.store.repository import ClinicStore

ScreeningId = Annotated[
    str, PathParameter(pattern=r"^[0-9a-f-]{36}$", description="Screening id (a UUID)")
]
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


class ScreeningResult(msgspec.Struct):
    id: str
    patient_id: str
    instrument: str
    completed_at: datetime
    recorded_at: datetime
    score: Score
    questionnaire_response: str
    """Reference to the stored QuestionnaireResponse."""
    observations: list[Observation]
    encounter_id: str | None = None
    recommendations: Recommendations | None = None
    """Services matched to the patient's needs when the screening was recorded (on the
    POST answer only; GET /v1/patients/{patient_id}/referrals gives the current ones)."""


def _result(recorded: Recorded, recommendations: Recommendations) -> ScreeningResult:
    submission = recorded.submission
    screening_id, scored = submission.screenings[0]
    return ScreeningResult(
        id=screening_id,
        patient_id=submission.patient_id,
        instrument=scored.instrument.id,
        completed_at=submission.completed_at,
        recorded_at=recorded.recorded_at,
        score=scored.score,
        questionnaire_response=f"QuestionnaireResponse/{submission.questionnaire_response_id}",
        observations=[o.resource for o in recorded.observations[screening_id]],
        encounter_id=submission.encounter_id,
        recommendations=recommendations,
    )


class ScreeningController(Controller):
    path = "/v1/screenings"
    tags = ["screenings"]

    @post(
        operation_id="create_screening",
        summary="Score and store a patient's answers",
        description=(
            "Validates and scores the answers, then stores the QuestionnaireResponse, one "
            "Observation per item and per total and subscale, in one transaction. Send an "
            "`Idempotency-Key` header to make retries safe: a repeat returns the first result."
        ),
        opt={**scoped("screenings:write"), **audited("create", "Screening")},
        status_code=201,
    )
    async def create(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[Database],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                required=False,
                pattern=IDEMPOTENCY_KEY_PATTERN,
                description="Any unique string per logical request; reuse it on retries",
            ),
        ] = None,
    ) -> Response[bytes]:
        # The catalog from state, not as a second dependency: Litestar resolves two
        # dependencies in a task group, two tasks per request on the busiest route.
        catalog: Catalog = request.app.state.catalog
        data = await decode(request, ScreeningRequest)
        instrument = catalog.usable(data.instrument, field="instrument")
        accepted, score = score_answers(instrument, data.answers)
        completed_at = check_completed_at(data.completed_at, "completed_at", utcnow())
        screening_id = str(new_id())
        note(request, screening_id, data.patient_id)
        submission = Submission(
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

        def render(
            recorded: Recorded, recommendations: Recommendations
        ) -> tuple[int, bytes, dict[str, str]]:
            body = msgspec.json.encode(_result(recorded, recommendations))
            return 201, body, {"Location": f"/v1/screenings/{screening_id}"}

        async def recommendations(context: PatientContext) -> Recommendations:
            return await self._recommend(
                request, db, context, catalog, data, instrument, score, screening_id
            )

        return await record_once(
            request,
            db,
            request.user,
            "POST /v1/screenings",
            submission,
            render,
            "application/json",
            prepare=recommendations,
        )

    @staticmethod
    async def _recommend(
        request: Request[Principal, Any, Any],
        db: Database,
        context: PatientContext,
        catalog: Catalog,
        data: ScreeningRequest,
        instrument: Instrument,
        score: Score,
        screening_id: str,
    ) -> Recommendations:
        band = score.band
        new = ScreeningSummary(
            screening_id=screening_id,
            instrument=instrument.id,
            instrument_title=instrument.definition.short_title,
            construct=instrument.definition.construct,
            completed_at=data.completed_at,
            total=score.total,
            positive=bool(band and band.positive),
            signal=Signal(band.signal) if band and band.signal else None,
            severity=Severity(band.severity) if band else Severity.NONE,
            band_label=band.label if band else None,
        )
        profile = data.profile
        if profile is None:
            stored = context.profile
            profile = msgspec.convert(stored, PatientProfile) if stored else PatientProfile()
        return await recommend(
            db,
            request.user.clinic_id,
            request.app.state.directory_cache,
            catalog,
            context.latest,
            profile,
            extra=[new],
        )

    @get(
        "/{screening_id:str}",
        operation_id="get_screening",
        summary="One stored screening with its score and Observations",
        opt={**scoped("screenings:read"), **audited("read", "Screening")},
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        screening_id: ScreeningId,
        db: NamedDependency[Database],
    ) -> ScreeningResult:
        async with db.begin() as conn:
            store = ClinicStore(conn, request.user.clinic_id)
            row = await store.get_screening(screening_id)
            if row is None:
                raise ApiError(
                    404, "No such screening", [FieldError("screening_id", "not found", "not_found")]
                )
            note(request, screening_id, row.patient_id)
            resources = await store.observations_of([screening_id])
        return ScreeningResult(
            id=row.id,
            patient_id=row.patient_id,
            instrument=row.instrument,
            completed_at=row.completed_at,
            recorded_at=row.created_at,
            score=msgspec.convert(row.score, Score),
            questionnaire_response=f"QuestionnaireResponse/{row.questionnaire_response_id}",
            observations=[msgspec.convert(r.resource, Observation) for r in resources],
            encounter_id=row.encounter_id,
        )
