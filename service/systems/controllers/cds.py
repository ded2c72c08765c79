"""CDS Hooks 2.0: a ``patient-view`` service that turns Belong's screenings into cards.

- ``GET /cds-services``: discovery (public: it holds no patient data).
- ``POST /cds-services/{service_id}``: a recent positive screen gives a ``warning`` card
  (the need, score, band and date, the top matched services with their reasons, what the
  patient's profile lacks for matching, and a suggestion per service creating a draft
  ServiceRequest); no loneliness or social-support screening in
  ``BELONG_CDS_SCREENING_WINDOW_DAYS`` gives an ``info`` card linking the Questionnaires;
  otherwise no card.
- ``POST /cds-services/{service_id}/feedback``: accepted and overridden outcomes are kept.

Calls are authenticated by the CDS client's own JWT (see auth.py): the EHR is registered
with ``belong clients create --clinic NAME --issuer ISS --jwks FILE --scope referrals:read``
so that its ``iss`` names the clinic. Belong does not call back the EHR's FHIR server: the
``patient`` prefetch is required, and a call without it answers 412.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter

from service.fhir import CANONICAL_BASE
from service.instruments.catalog import Catalog
from service.instruments.model import Signal
from service.matching.needs import ScreeningSummary
from service.matching.service import recommend, screening_summary
from service.patients.model import PatientProfile
from service.platform.audit import audited, note
from service.platform.auth import PUBLIC, require_jwt_caller, scoped
from service.platform.body import decode
from service.platform.credentials import Principal
from service.platform.database import Database, utc_field, utcnow
from service.platform.documented import JSON, documented
from service.platform.errors import ApiError, FieldError
from service.platform.origin import public_origin
from service.platform.params import ID_PATTERN
from service.screenings.repository import patient_context
from service.systems.repository import record_feedback

SERVICE_ID = "belong-social-connection"
HOOK = "patient-view"
SUMMARY_MAX = 139
"""CDS Hooks: a card's summary is under 140 characters."""
TOP_SERVICES = 3
SUGGESTED_QUESTIONNAIRES = ("ucla-3", "lsns-6", "osss-3")
OVERRIDE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/cds-override-reason"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
NO_NUL = r"^[^\x00]*$"
"""A CDS client's text: PostgreSQL cannot hold NUL, so a field carrying one is refused (400)."""
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
NEED_WORDS = {
    Signal.LONELINESS: "Loneliness",
    Signal.SOCIAL_ISOLATION: "Social isolation",
    Signal.LOW_SUPPORT: "Low social support",
}

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


class CdsCoding(msgspec.Struct, omit_defaults=True):
    code: str
    display: str
    system: str | None = None


class CardSource(msgspec.Struct, omit_defaults=True):
    label: str
    url: str | None = None
    topic: CdsCoding | None = None


class Action(msgspec.Struct, omit_defaults=True):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None


class Suggestion(msgspec.Struct):
    label: str
    uuid: str
    isRecommended: bool
    actions: list[Action]


class Link(msgspec.Struct):
    label: str
    url: str
    type: Literal["absolute", "smart"]


class Card(msgspec.Struct, omit_defaults=True):
    uuid: str
    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=SUMMARY_MAX)]
    indicator: Literal["info", "warning", "critical"]
    source: CardSource
    detail: str | None = None
    suggestions: list[Suggestion] = []
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    """Present exactly when there are suggestions (CDS Hooks 2.0 requires it then)."""
    overrideReasons: list[CdsCoding] = []
    links: list[Link] = []


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

OVERRIDE_REASONS = [
    CdsCoding(
        code="patient-declined", display="Patient declined a referral", system=OVERRIDE_SYSTEM
    ),
    CdsCoding(
        code="already-supported", display="Already receiving support", system=OVERRIDE_SYSTEM
    ),
    CdsCoding(code="not-now", display="Not appropriate at this visit", system=OVERRIDE_SYSTEM),
]

# --------------------------------------------------------------------------- cards

_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~])")


def md(text: str) -> str:
    """Text from the directory or the catalog, safe inside Markdown."""
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split()))


def clip(text: str, limit: int = SUMMARY_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def source(base: str) -> CardSource:
    return CardSource(
        label="Belong",
        url=f"{base}/cds-services",
        topic=CdsCoding(code="social-connection", display="Social connection", system=SDOHCC_CODES),
    )


def draft_service_request(patient_id: str, service: Any, need: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "410606002",
                        "display": "Social service procedure",
                    }
                ]
            },
            {"coding": [{"system": SDOHCC_CODES, "code": "social-connection"}]},
        ],
        "code": {"text": f"Referral to {service.name}"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "performer": [{"reference": f"HealthcareService/{service.id}", "display": service.name}],
        "reasonCode": [{"text": need}],
    }


def positive_card(base: str, patient_id: str, need: ScreeningSummary, recommendations: Any) -> Card:
    signal = need.signal
    words = NEED_WORDS.get(signal, "Social need") if signal is not None else "Social need"
    services = recommendations.items[:TOP_SERVICES]
    matched = f"; {len(services)} local services matched" if services else ""
    summary = clip(f"{words}: positive {need.instrument_title} screen{matched}")
    total = "not scored" if need.total is None else f"{need.total:g}"
    lines = [
        f"**{md(need.instrument_title)}** on {need.completed_at.date().isoformat()}: "
        f"score **{md(total)}**, band **{md(need.band_label or 'positive')}** "
        f"(severity {need.severity.value}).",
        "",
    ]
    if services:
        lines += ["**Recommended services**", ""]
        for index, item in enumerate(services, 1):
            reasons = "; ".join(md(r.text) for r in item.reasons) or "matches the need"
            lines.append(
                f"{index}. **{md(item.service.name)}** ({md(item.service.organization)}): {reasons}"
            )
    else:
        lines.append("No service in the clinic's directory matches this patient yet.")
    if recommendations.warnings:
        lines += [
            "",
            "**The patient's profile is incomplete**, so some matches may not fit:",
            "",
            *(f"- {md(w.message)}" for w in recommendations.warnings),
        ]
    suggestions = [
        Suggestion(
            label=clip(f"Refer to {item.service.name}", 80),
            uuid=str(uuid.uuid4()),
            isRecommended=index == 0,
            actions=[
                Action(
                    type="create",
                    description=clip(f"Draft a referral to {item.service.name}", 200),
                    resource=draft_service_request(patient_id, item.service, words),
                )
            ],
        )
        for index, item in enumerate(services)
    ]
    return Card(
        uuid=str(uuid.uuid4()),
        summary=summary,
        indicator="warning",
        source=source(base),
        detail="\n".join(lines),
        suggestions=suggestions,
        selectionBehavior="any" if suggestions else None,
        overrideReasons=OVERRIDE_REASONS,
    )


def due_card(base: str, catalog: Catalog, window_days: int) -> Card:
    links = []
    for instrument_id in SUGGESTED_QUESTIONNAIRES:
        instrument = catalog.instruments.get(instrument_id)
        if instrument is not None and catalog.enabled(instrument):
            links.append(
                Link(
                    label=clip(f"{instrument.definition.short_title} questionnaire", 80),
                    url=f"{base}/fhir/Questionnaire/{instrument_id}",
                    type="absolute",
                )
            )
    return Card(
        uuid=str(uuid.uuid4()),
        summary=clip(f"Loneliness and social-support screening due (none in {window_days} days)"),
        indicator="info",
        source=source(base),
        detail=(
            f"No loneliness, social-isolation or social-support screening in the last "
            f"{window_days} days. Chronic pain and loneliness often travel together; a "
            "three-item screen takes under a minute."
        ),
        links=links,
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


class CdsServicesController(Controller):
    path = "/cds-services"
    tags = ["cds-hooks"]

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
        db: NamedDependency[Database],
        catalog: NamedDependency[Catalog],
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
        settings = request.app.state.settings
        base = public_origin(request)
        window = settings.cds_screening_window_days
        cutoff = utcnow() - timedelta(days=window)
        if patient.get("deceasedBoolean") is True or "deceasedDateTime" in patient:
            return Response(CdsResponse(cards=[]))
        clinic_id = request.user.clinic_id
        context = await patient_context(db, clinic_id, patient_id)
        summaries = [s for r in context.latest if (s := screening_summary(r, catalog)) is not None]
        social = [s for s in summaries if s.construct != "pain"]
        recent = [s for s in social if s.completed_at >= cutoff]
        positive = sorted(
            (s for s in recent if s.positive and s.signal is not None),
            key=lambda s: s.completed_at,
            reverse=True,
        )
        if positive:
            recommendations = await recommend(
                db,
                clinic_id,
                request.app.state.directory_cache,
                catalog,
                context.latest,
                msgspec.convert(context.profile or {}, PatientProfile),
                limit=TOP_SERVICES,
            )
            return Response(
                CdsResponse(cards=[positive_card(base, patient_id, positive[0], recommendations)])
            )
        if not recent:
            return Response(CdsResponse(cards=[due_card(base, catalog, window)]))
        return Response(CdsResponse(cards=[]))

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
        db: NamedDependency[Database],
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
        async with db.begin() as conn:
            recorded = await record_feedback(conn, request.user, service_id, entries)
        return FeedbackReceipt(recorded=recorded)
