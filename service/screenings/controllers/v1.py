"""Screenings: answers in, score and FHIR Observations out, stored once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, PathParameter

from service.directory.service import DirectoryCache
from service.fhir.types import Observation
from service.instruments.catalog import Catalog
from service.instruments.controllers.v1 import Answers, score_answers
from service.instruments.model import Severity, Signal
from service.instruments.scoring import Score
from service.matching.needs import ScreeningSummary
from service.matching.service import Recommendations, recommend
from service.patients.model import PainCondition, PatientId, PatientProfile
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.body import decode
from service.platform.credentials import Principal
from service.platform.database import Database, new_id, utcnow
from service.platform.documented import JSON, documented, link
from service.platform.lookup import found
from service.platform.params import ID_PATTERN
from service.platform.tenancy import ClinicStore
from service.screenings.records import PatientContext
from service.screenings.service import (
    IDEMPOTENCY_KEY_PATTERN,
    Recorded,
    ScoredScreening,
    Submission,
    check_completed_at,
    record_once,
)

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


SCREENING_ROUTE = "POST /v1/screenings"
"""The route an Idempotency-Key is held under."""


def screening_submission(
    data: ScreeningRequest, catalog: Catalog, screening_id: str, now: datetime
) -> Submission:
    """The request validated and scored with the catalog: what one screening records."""
    instrument = catalog.usable(data.instrument, field="instrument")
    accepted, score = score_answers(instrument, data.answers)
    completed_at = check_completed_at(data.completed_at, "completed_at", now)
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


def render_screening(
    recorded: Recorded, recommendations: Recommendations
) -> tuple[int, bytes, dict[str, str]]:
    """The POST answer: status, body and headers."""
    submission = recorded.submission
    screening_id, scored = submission.screenings[0]
    result = ScreeningResult(
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
    return 201, msgspec.json.encode(result), {"Location": f"/v1/screenings/{screening_id}"}


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
        opt={
            **scoped("screenings:write"),
            **audited("create", "Screening"),
            **documented(
                errors={403, 404, 409, 422},
                request=ScreeningRequest,
                example={
                    "patient_id": "pat-1042",
                    "instrument": "ucla-3",
                    "completed_at": "2026-11-24T09:30:00Z",
                    "answers": {"1": 3, "2": 2, "3": 3},
                    "encounter_id": "enc-77",
                    "profile": {"pain_conditions": ["crps"], "preferred_modalities": ["online"]},
                },
                bodies={201: (JSON, ScreeningResult)},
                links={
                    "GetScreening": link("get_screening", screening_id="$response.body#/id"),
                    "GetPatient": link("get_patient", patient_id="$response.body#/patient_id"),
                    "GetPatientScreenings": link(
                        "list_patient_screenings", patient_id="$response.body#/patient_id"
                    ),
                    "GetPatientReferrals": link(
                        "get_patient_referrals", patient_id="$response.body#/patient_id"
                    ),
                },
            ),
        },
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
        screening_id = str(new_id())
        submission = screening_submission(data, catalog, screening_id, utcnow())
        note(request, screening_id, data.patient_id)
        clinic_id = request.user.clinic_id
        cache: DirectoryCache = request.app.state.directory_cache

        async def recommendations(context: PatientContext) -> Recommendations:
            return await screening_recommendations(
                db, clinic_id, cache, catalog, context, submission, data.profile
            )

        return await record_once(
            request,
            db,
            request.user,
            SCREENING_ROUTE,
            submission,
            render_screening,
            "application/json",
            prepare=recommendations,
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
            row = found(
                await store.get_screening(screening_id),
                "screening",
                screening_id,
                "No such screening",
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
