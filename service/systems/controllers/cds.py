"""CDS Hooks 2.0: a ``patient-view`` service that turns Belong's screenings into cards.

- ``GET /cds-services``: discovery (public: it holds no patient data).
- ``POST /cds-services/{service_id}``: a recent positive screen gives a ``warning`` card
  (the need, score, band and date, the top matched services with their reasons, what the
  patient's profile lacks for matching, a suggestion per service creating a draft
  ServiceRequest, and a ``smart`` link opening Belong on the recommendations); no
  loneliness or social-support screening in ``BELONG_CDS_SCREENING_WINDOW_DAYS`` gives an
  ``info`` card with a ``smart`` link opening Belong's screening entry; otherwise no card.
  A ``smart`` link is Belong's SMART App Launch URL (``/app/launch``); its ``appContext``
  (``recommendations`` or ``screening``) comes back to Belong in the EHR's token response.
- ``POST /cds-services/{service_id}/feedback``: accepted and overridden outcomes are kept.

Calls are authenticated by the CDS client's own JWT (see auth.py): the EHR is registered
with ``belong clients create --clinic NAME --issuer ISS --jwks FILE --scope referrals:read``
so that its ``iss`` names the clinic. Belong does not call back the EHR's FHIR server: the
``patient`` prefetch is required, and a call without it answers 412. The cards are made by
``service.systems.service.CdsHooks`` (their rules and shapes in ``service.systems.model``):
this module parses the call, maps what is wrong with it to HTTP and renders the cards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter

from service.instruments.service import Catalog
from service.platform.audit import audited, note
from service.platform.auth import PUBLIC, require_jwt_caller, scoped
from service.platform.body import decode
from service.platform.caller import Caller
from service.platform.credentials import Principal
from service.platform.database import utc_field
from service.platform.documented import JSON, documented
from service.platform.errors import ApiError, FieldError
from service.platform.origin import public_origin
from service.platform.params import ID_PATTERN
from service.systems.model import Card
from service.systems.service import CdsHooks

SERVICE_ID = "belong-social-connection"
HOOK = "patient-view"
NO_NUL = r"^[^\x00]*$"
"""A CDS client's text: PostgreSQL cannot hold NUL, so a field carrying one is refused (400)."""
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

ServiceIdParam = Annotated[
    str,
    PathParameter(
        pattern=r"^[A-Za-z0-9\-_.]{1,64}$", max_length=64, description="The CDS service id"
    ),
]

# --------------------------------------------------------------------------- wire shapes


class CdsService(msgspec.Struct):
    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str]
    usageRequirements: str


class CdsServices(msgspec.Struct):
    services: list[CdsService]


class PatientViewContext(msgspec.Struct):
    userId: Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
    patientId: Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
    encounterId: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)] | None
    ) = None


class FhirAuthorization(msgspec.Struct):
    access_token: Annotated[str, msgspec.Meta(min_length=1)]
    token_type: Literal["Bearer"]
    expires_in: Annotated[int, msgspec.Meta(ge=0)]
    scope: str
    subject: str
    patient: str | None = None


class CdsRequest(msgspec.Struct):
    """A CDS Hooks 2.0 call of the ``patient-view`` hook."""

    hook: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    hookInstance: Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)]
    context: PatientViewContext
    fhirServer: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    fhirAuthorization: FhirAuthorization | None = None
    prefetch: dict[str, dict[str, Any] | None] | None = None
    """``patient``: the Patient resource (required; null when the client could not get it)."""


class CdsResponse(msgspec.Struct):
    cards: list[Card]


class AcceptedSuggestion(msgspec.Struct):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]


class OverrideReasonCoding(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
    system: Annotated[str, msgspec.Meta(max_length=255, pattern=NO_NUL)] | None = None
    display: Annotated[str, msgspec.Meta(max_length=255, pattern=NO_NUL)] | None = None


class OverrideReason(msgspec.Struct):
    reason: OverrideReasonCoding | None = None
    userComment: Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)] | None = None


class FeedbackEntry(msgspec.Struct):
    card: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: Annotated[datetime, msgspec.Meta(tz=True)]
    acceptedSuggestions: Annotated[list[AcceptedSuggestion], msgspec.Meta(max_length=50)] = []
    overrideReason: OverrideReason | None = None


class FeedbackRequest(msgspec.Struct):
    feedback: Annotated[list[FeedbackEntry], msgspec.Meta(min_length=1, max_length=100)]


class FeedbackReceipt(msgspec.Struct):
    recorded: int


SERVICE = CdsService(
    hook=HOOK,
    title="Belong: loneliness and social support",
    description=(
        "When the chart opens: a warning card for a recent positive loneliness, isolation "
        "or social-support screen, with matched local services and draft referrals; an "
        "info card when no screening was done recently; nothing otherwise."
    ),
    id=SERVICE_ID,
    prefetch={"patient": "Patient/{{context.patientId}}"},
    usageRequirements=(
        "The CDS client is registered with its issuer and JWKS "
        "(belong clients create --issuer ISS --jwks FILE --scope referrals:read) and sends "
        "the patient prefetch; patients are matched by the EHR's own patient id."
    ),
)

# --------------------------------------------------------------------------- routes


def _prefetched_patient(call: CdsRequest) -> dict[str, Any]:
    patient = (call.prefetch or {}).get("patient")
    if patient is None:
        raise ApiError(
            412,
            "The patient prefetch is required: Belong does not read the EHR's FHIR server",
            [FieldError("prefetch.patient", "missing or null", "required")],
        )
    if patient.get("resourceType") != "Patient" or patient.get("id") != call.context.patientId:
        raise ApiError(
            400,
            "prefetch.patient is not the Patient named by context.patientId",
            [FieldError("prefetch.patient", "not context.patientId's Patient", "invalid")],
        )
    return patient


def provide_cds_hooks(
    caller: NamedDependency[Caller], catalog: NamedDependency[Catalog], state: State
) -> CdsHooks:
    """The ``cds`` dependency: the use cases, with the worker's directory cache and the
    screening window from the settings."""
    return CdsHooks(
        caller, catalog, state.directory_cache, state.settings.cds_screening_window_days
    )


class CdsServicesController(Controller):
    path = "/cds-services"
    tags = ["cds-hooks"]
    dependencies = {"cds": Provide(provide_cds_hooks, sync_to_thread=False)}

    @get(
        operation_id="cds_discovery",
        summary="CDS Hooks discovery: the services Belong offers",
        opt={**PUBLIC, **documented(schemas=(CdsServices,))},
    )
    async def discovery(self) -> CdsServices:
        return CdsServices(services=[SERVICE])

    @post(
        "/{service_id:str}",
        operation_id="cds_call",
        summary="Call a CDS service (patient-view): cards for the patient",
        description=(
            "Authenticated by a JWT the registered CDS client signs (RS384 or ES384), with "
            "`aud` the URL called, `iss` its registered issuer, `exp`, `iat` and a fresh `jti`."
        ),
        guards=[require_jwt_caller],
        opt={
            **scoped("referrals:read"),
            **audited("read", "CdsCards"),
            "cds": True,
            **documented(errors={412}, request=CdsRequest, bodies={200: (JSON, CdsResponse)}),
        },
        status_code=200,
    )
    async def call(
        self,
        request: Request[Principal, Any, Any],
        service_id: ServiceIdParam,
        cds: NamedDependency[CdsHooks],
    ) -> Response[CdsResponse]:
        if service_id != SERVICE_ID:
            raise ApiError(
                404,
                f"No CDS service {service_id!r}",
                [FieldError("service_id", "unknown", "not_found")],
            )
        call = await decode(request, CdsRequest)
        if call.hook != HOOK:
            raise ApiError(
                400, f"This service answers {HOOK}", [FieldError("hook", "not patient-view")]
            )
        if call.fhirAuthorization is not None and call.fhirServer is None:
            raise ApiError(
                400,
                "fhirServer is required with fhirAuthorization",
                [FieldError("fhirServer", "missing", "required")],
            )
        patient_id = call.context.patientId
        note(request, None, patient_id)
        patient = _prefetched_patient(call)
        cards = await cds.patient_view(patient_id, patient, public_origin(request))
        return Response(CdsResponse(cards=cards))

    @post(
        "/{service_id:str}/feedback",
        operation_id="cds_feedback",
        summary="Feedback on cards: accepted or overridden",
        guards=[require_jwt_caller],
        opt={
            **scoped("referrals:read"),
            **audited("create", "CdsFeedback"),
            "cds": True,
            **documented(errors={422}, request=FeedbackRequest, schemas=(FeedbackReceipt,)),
        },
        status_code=200,
    )
    async def feedback(
        self,
        request: Request[Principal, Any, Any],
        service_id: ServiceIdParam,
        cds: NamedDependency[CdsHooks],
    ) -> FeedbackReceipt:
        if service_id != SERVICE_ID:
            raise ApiError(
                404,
                f"No CDS service {service_id!r}",
                [FieldError("service_id", "unknown", "not_found")],
            )
        data = await decode(request, FeedbackRequest)
        entries = []
        for index, entry in enumerate(data.feedback):
            if entry.outcome == "accepted" and not entry.acceptedSuggestions:
                raise ApiError(
                    422,
                    "An accepted outcome names the accepted suggestions",
                    [FieldError(f"feedback[{index}].acceptedSuggestions", "empty", "required")],
                )
            if entry.outcome == "overridden" and entry.acceptedSuggestions:
                raise ApiError(
                    422,
                    "An overridden outcome accepts no suggestion",
                    [FieldError(f"feedback[{index}].acceptedSuggestions", "not empty")],
                )
            entries.append(
                {
                    "card_uuid": entry.card,
                    "outcome": entry.outcome,
                    "accepted_suggestions": [s.id for s in entry.acceptedSuggestions],
                    "override_reason": msgspec.to_builtins(entry.overrideReason)
                    if entry.overrideReason is not None
                    else None,
                    "outcome_at": utc_field(
                        entry.outcomeTimestamp, f"feedback[{index}].outcomeTimestamp"
                    ),
                }
            )
        return FeedbackReceipt(recorded=await cds.record_feedback(service_id, entries))
