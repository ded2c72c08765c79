"""A patient's matching profile and screening history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from service.instruments.model import MeaningfulChange
from service.instruments.scoring import BandResult
from service.instruments.service import Catalog
from service.matching.service import Recommendations
from service.patients.model import PatientProfile, Trend
from service.patients.service import Patients
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.body import decode
from service.platform.caller import Caller
from service.platform.credentials import Principal
from service.platform.documented import JSON, documented, link
from service.platform.params import ID_PATTERN
from service.referrals.service import Referral

PatientIdParam = Annotated[
    str,
    PathParameter(
        pattern=ID_PATTERN,
        max_length=64,
        description="The EHR's own patient id (FHIR id syntax)",
    ),
]


class Patient(msgspec.Struct):
    id: str
    profile: PatientProfile
    created_at: datetime
    updated_at: datetime


class HistoryEntry(msgspec.Struct):
    id: str
    completed_at: datetime
    total: float | None
    band: BandResult | None
    change: float | None
    """Total minus the previous screening's total on the same instrument."""
    trend: Trend | None
    """better | worse once the change reaches the instrument's meaningful change (read with
    its direction), else "no meaningful change"; null for the first screening and where the
    instrument has no threshold (``meaningful_change.kind`` none, with the reason)."""


class InstrumentHistory(msgspec.Struct):
    instrument: str
    title: str
    direction: str
    meaningful_change: MeaningfulChange
    """The threshold the trend is read against, with its source."""
    screenings: list[HistoryEntry]


class PatientReferrals(msgspec.Struct):
    patient_id: str
    recommendations: Recommendations
    """Services matched to the needs of the latest screenings and the current profile."""
    referrals: list[Referral]
    """Referrals already made, most recently changed first."""


class PatientScreenings(msgspec.Struct):
    patient_id: str
    instruments: list[InstrumentHistory]


def _patient(row: Any) -> Patient:
    return Patient(
        id=row.id,
        profile=msgspec.convert(row.profile, PatientProfile),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def provide_patients(
    caller: NamedDependency[Caller], catalog: NamedDependency[Catalog]
) -> Patients:
    return Patients(caller, catalog)


class PatientController(Controller):
    path = "/v1/patients"
    tags = ["patients"]
    dependencies = {"patients": Provide(provide_patients, sync_to_thread=False)}

    @put(
        "/{patient_id:str}",
        operation_id="put_patient",
        summary="Create or replace a patient's matching profile",
        description="Belong stores no names, addresses or birth dates: only what matching needs.",
        opt={
            **scoped("screenings:write"),
            **audited("update", "Patient"),
            **documented(
                errors={422},
                request=PatientProfile,
                example={
                    "pain_conditions": ["crps"],
                    "languages": ["en"],
                    "location": {"lat": 51.52, "lon": -0.12},
                    "preferred_modalities": ["online"],
                    "age_band": "45-64",
                    "max_travel_km": 10,
                },
                bodies={200: (JSON, Patient), 201: (JSON, Patient)},
                links={"GetPatient": link("get_patient", patient_id="$response.body#/id")},
            ),
        },
    )
    async def put_profile(
        self,
        request: Request[Principal, Any, Any],
        patient_id: PatientIdParam,
        patients: NamedDependency[Patients],
    ) -> Response[Patient]:
        data = await decode(request, PatientProfile)
        row, created = await patients.put_profile(patient_id, data)
        return Response(_patient(row), status_code=201 if created else 200)

    @get(
        "/{patient_id:str}",
        operation_id="get_patient",
        summary="A patient's matching profile",
        opt={**scoped("screenings:read"), **audited("read", "Patient")},
    )
    async def get_profile(
        self, patient_id: PatientIdParam, patients: NamedDependency[Patients]
    ) -> Patient:
        return _patient(await patients.profile(patient_id))

    @get(
        "/{patient_id:str}/screenings",
        operation_id="list_patient_screenings",
        summary="Screening history per instrument, newest first, with the change since the last",
        description=(
            "Each screening carries its change from the one before. The trend says better or "
            "worse only once the change reaches the instrument's meaningful change (a "
            "minimal important difference or a reliable change index, given with its source "
            'as meaningful_change), and "no meaningful change" below it. Where the '
            "instrument has no threshold (kind none, with the reason) the trend is null."
        ),
        opt={**scoped("screenings:read"), **audited("search", "Screening")},
    )
    async def history(
        self,
        patient_id: PatientIdParam,
        patients: NamedDependency[Patients],
        limit: Annotated[
            int, QueryParameter(ge=1, le=100, description="Screenings per instrument")
        ] = 20,
    ) -> PatientScreenings:
        histories = await patients.history(patient_id, per_instrument=limit)
        return PatientScreenings(
            patient_id=patient_id,
            instruments=[
                InstrumentHistory(
                    instrument=h.definition.id,
                    title=h.definition.title,
                    direction=h.definition.direction.value,
                    meaningful_change=h.definition.meaningful_change,
                    screenings=[
                        HistoryEntry(
                            id=s.id,
                            completed_at=s.completed_at,
                            total=s.total,
                            band=s.band,
                            change=s.change,
                            trend=s.trend,
                        )
                        for s in h.screenings
                    ],
                )
                for h in histories
            ],
        )

    @get(
        "/{patient_id:str}/referrals",
        operation_id="get_patient_referrals",
        summary="Current recommendations with reasons, and the referrals already made",
        opt={**scoped("referrals:read"), **audited("search", "Referral")},
    )
    async def referrals(
        self,
        request: Request[Principal, Any, Any],
        patient_id: PatientIdParam,
        patients: NamedDependency[Patients],
        limit: Annotated[int, QueryParameter(ge=1, le=50, description="Recommendations")] = 10,
        explain: Annotated[
            bool, QueryParameter(description="Also list the services filtered out, with why")
        ] = False,
    ) -> PatientReferrals:
        recommendations, made = await patients.referrals(
            patient_id, request.app.state.directory_cache, limit, explain
        )
        note(request, None, patient_id)
        return PatientReferrals(
            patient_id=patient_id,
            recommendations=recommendations,
            referrals=made,
        )
