"""Screenings: answers in, score and FHIR Observations out, stored once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, PathParameter

from service.directory.service import DirectoryCache
from service.fhir.types import Observation
from service.instruments.scoring import Score
from service.instruments.service import Catalog
from service.matching.service import Recommendations
from service.platform.audit import audit_event, audited, note
from service.platform.auth import scoped
from service.platform.body import decode
from service.platform.credentials import Principal
from service.platform.database import Database, new_id, utcnow
from service.platform.documented import JSON, documented, link
from service.screenings.controllers import provide_screenings
from service.screenings.controllers.answering import (
    IDEMPOTENCY_KEY_PATTERN,
    ScreeningRequest,
    answer,
    key_use,
    refused,
    screening_submission,
)
from service.screenings.records import PatientContext
from service.screenings.service import (
    CREATED,
    Recorded,
    Refusal,
    Screenings,
    record_submission,
    screening_recommendations,
)

ScreeningId = Annotated[
    str, PathParameter(pattern=r"^[0-9a-f-]{36}$", description="Screening id (a UUID)")
]


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
    status: Literal["final", "corrected", "entered-in-error"] = "final"
    """final; corrected once an amended response re-scored it; entered-in-error once
    withdrawn (then counted in no needs or history)."""
    recommendations: Recommendations | None = None
    """Services matched to the patient's needs when the screening was recorded (on the
    POST answer only; GET /v1/patients/{patient_id}/referrals gives the current ones)."""


SCREENING_ROUTE = "POST /v1/screenings"
"""The route an Idempotency-Key is held under."""


def render_screening(
    recorded: Recorded, recommendations: Recommendations
) -> tuple[bytes, dict[str, str]]:
    """The POST answer's body and headers."""
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
    return msgspec.json.encode(result), {"Location": f"/v1/screenings/{screening_id}"}


class ScreeningController(Controller):
    path = "/v1/screenings"
    tags = ["screenings"]
    dependencies = {"screenings": Provide(provide_screenings, sync_to_thread=False)}

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
        now = utcnow()
        submission = screening_submission(data, catalog, screening_id, now)
        note(request, screening_id, data.patient_id)
        key = await key_use(request, SCREENING_ROUTE)
        clinic_id = request.user.clinic_id
        cache: DirectoryCache = request.app.state.directory_cache

        async def recommendations(context: PatientContext) -> Recommendations:
            return await screening_recommendations(
                db, clinic_id, cache, catalog, context, submission, data.profile
            )

        audit = audit_event(request, CREATED, now)
        try:
            outcome = await record_submission(
                db, clinic_id, submission, now, key, render_screening, audit, recommendations
            )
        except Refusal as exc:
            raise refused(exc) from exc
        return answer(request, outcome, submission, audit, "application/json")

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
        screenings: NamedDependency[Screenings],
    ) -> ScreeningResult:
        row, resources = await screenings.screening(screening_id)
        note(request, screening_id, row.patient_id)
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
            status=row.status,
        )
