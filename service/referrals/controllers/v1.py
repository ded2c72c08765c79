"""Closed-loop referrals: made with the patient's consent, followed to their outcome."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, HeaderParameter, PathParameter, QueryParameter

from service.directory.controllers.v1 import directory_service, stored_service
from service.instruments.model import Signal
from service.matching.service import ServiceSummary, summary
from service.patients.model import PatientId
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.body import decode
from service.platform.credentials import Principal
from service.platform.database import Database, new_id, utcnow
from service.platform.documented import documented, link
from service.platform.errors import ApiError, FieldError
from service.platform.lookup import found
from service.platform.observability import REFERRALS
from service.platform.params import ID_PATTERN, Instant, instant
from service.platform.tenancy import ClinicStore, ReferralQuery
from service.referrals.model import (
    NEEDS_REASON,
    NEXT,
    Status,
    TransitionError,
    amends_outcome,
    check,
)
from service.screenings.records import ReferralRecord

ReferralId = Annotated[
    str, PathParameter(pattern=r"^[0-9a-f-]{36}$", description="Referral id (a UUID)")
]
Note = Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")]
Id64 = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]


class ConsentMethod(StrEnum):
    VERBAL = "verbal"
    WRITTEN = "written"
    ELECTRONIC = "electronic"


class Consent(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """The patient's consent to share their details with the service."""

    given: bool
    method: ConsentMethod
    recorded_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    recorded_by: Note | None = None


class ReferralRequest(msgspec.Struct, forbid_unknown_fields=True):
    patient_id: PatientId
    service_id: Id64
    consent: Consent
    screening_id: Id64 | None = None
    """The screening that raised the need this referral answers."""
    need: Signal | None = None
    note: Note | None = None


class StatusChange(msgspec.Struct, forbid_unknown_fields=True):
    status: Status | None = None
    """The next status. Required, except to add or change a completed referral's outcome
    (leave it out, or send completed again)."""
    reason: Note | None = None
    """Why; required for rejected, cancelled, failed and on-hold."""
    outcome: Note | None = None
    """What came of it, e.g. attended 6 of 8 sessions; may be added or changed once
    completed."""


class ReferralEvent(msgspec.Struct):
    from_status: Status | None
    to_status: Status
    reason: str | None
    outcome: str | None
    client_id: uuid.UUID
    recorded_at: datetime


class Referral(msgspec.Struct):
    id: str
    patient_id: str
    service: ServiceSummary
    status: Status
    allowed_next: list[Status]
    consent: Consent
    version: int
    created_at: datetime
    updated_at: datetime
    history: list[ReferralEvent]
    screening_id: str | None = None
    need: Signal | None = None
    note: str | None = None
    status_reason: str | None = None
    outcome: str | None = None


class ReferralPage(msgspec.Struct):
    items: list[Referral]
    total: int
    limit: int
    offset: int


async def load_referrals(store: ClinicStore, rows: list[Any]) -> list[Referral]:
    """Referral views with their services (even withdrawn ones) and full history."""
    return [referral_view(record) for record in await store.with_history(rows)]


def referral_view(record: ReferralRecord) -> Referral:
    row = record.referral
    return Referral(
        id=row["id"],
        patient_id=row["patient_id"],
        service=summary(stored_service(row["service_id"], record.service)),
        status=Status(row["status"]),
        allowed_next=sorted(NEXT[Status(row["status"])]),
        consent=msgspec.convert(row["consent"], Consent),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=[_event(event) for event in record.history],
        screening_id=row["screening_id"],
        need=Signal(row["need"]) if row["need"] else None,
        note=row["note"],
        status_reason=row["status_reason"],
        outcome=row["outcome"],
    )


def _event(stored: dict[str, Any]) -> ReferralEvent:
    return msgspec.convert(stored, ReferralEvent)


async def _amend_outcome(
    store: ClinicStore, row: Any, outcome: str, client_id: uuid.UUID, now: datetime
) -> None:
    """Add or change a completed referral's outcome, recorded as completed -> completed;
    the same outcome again changes nothing."""
    if outcome == row.outcome:
        return
    changed = await store.amend_outcome(
        row.id, status=row.status, version=row.version, outcome=outcome, now=now
    )
    if not changed:
        raise ApiError(
            409,
            "The referral was changed by another request; read it and try again",
            [FieldError("outcome", "changed concurrently", "conflict")],
        )
    await store.insert_referral_event(
        referral_id=row.id,
        from_status=row.status,
        to_status=row.status,
        reason=None,
        outcome=outcome,
        client_id=client_id,
        recorded_at=now,
    )


class ReferralController(Controller):
    path = "/v1/referrals"
    tags = ["referrals"]

    @post(
        operation_id="create_referral",
        summary="Refer a patient to a directory service, with their consent",
        opt={
            **scoped("referrals:write"),
            **audited("create", "Referral"),
            **documented(
                errors={422},
                request=ReferralRequest,
                example={
                    "patient_id": "pat-1042",
                    "service_id": "01a213cc-3899-769f-979a-40a09bb72e88",
                    "need": "loneliness",
                    "consent": {"given": True, "method": "verbal"},
                    "note": "Prefers evening online groups",
                },
                schemas=(Referral,),
                links={
                    "GetReferral": link("get_referral", referral_id="$response.body#/id"),
                    "UpdateReferral": link(
                        "update_referral_status", referral_id="$response.body#/id"
                    ),
                    "ReadTask": link("fhir_read_task", resource_id="$response.body#/id"),
                },
            ),
        },
    )
    async def create(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[Database],
    ) -> Response[Referral]:
        data = await decode(request, ReferralRequest)
        if not data.consent.given:
            raise ApiError(
                422,
                "A referral needs the patient's consent to share their details",
                [FieldError("consent.given", "must be true", "consent_required")],
            )
        referral_id = str(new_id())
        note(request, referral_id, data.patient_id)
        now = utcnow()
        async with db.begin() as conn:
            store = ClinicStore(conn, request.user.clinic_id)
            problems = []
            if await store.get_patient(data.patient_id) is None:
                problems.append(FieldError("patient_id", "no such patient", "not_found"))
            service = await store.get_service(data.service_id)
            if service is None:
                problems.append(FieldError("service_id", "no such service", "not_found"))
            elif not directory_service(service).takes_referrals:
                problems.append(
                    FieldError("service_id", "this service is not taking referrals", "closed")
                )
            if data.screening_id is not None:
                screening = await store.get_screening(data.screening_id)
                if screening is None or screening.patient_id != data.patient_id:
                    problems.append(
                        FieldError(
                            "screening_id", "no such screening for this patient", "not_found"
                        )
                    )
            if problems:
                raise ApiError(422, "The referral cannot be made", problems)
            consent = msgspec.to_builtins(data.consent)
            consent.setdefault("recorded_at", now.isoformat())
            await store.insert_referral(
                id=referral_id,
                patient_id=data.patient_id,
                service_id=data.service_id,
                screening_id=data.screening_id,
                need=data.need.value if data.need else None,
                note=data.note,
                consent=consent,
                status=Status.REQUESTED.value,
                status_reason=None,
                outcome=None,
                version=1,
                requested_by=request.user.client_id,
                created_at=now,
                updated_at=now,
            )
            await store.insert_referral_event(
                referral_id=referral_id,
                from_status=None,
                to_status=Status.REQUESTED.value,
                reason=None,
                outcome=None,
                client_id=request.user.client_id,
                recorded_at=now,
            )
            [referral] = await load_referrals(store, [await store.get_referral(referral_id)])
        REFERRALS.labels(Status.REQUESTED.value).inc()
        return Response(
            referral, status_code=201, headers={"Location": f"/v1/referrals/{referral_id}"}
        )

    @get(
        operation_id="list_referrals",
        summary="The clinic's referral worklist, most recently changed first",
        opt={
            **scoped("referrals:read"),
            **audited("search", "Referral"),
            **documented(schemas=(ReferralPage,)),
        },
    )
    async def worklist(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[Database],
        status: FromQuery[Status | None] = None,
        patient_id: Annotated[
            str | None, QueryParameter(pattern=ID_PATTERN, required=False)
        ] = None,
        service_id: Annotated[
            str | None, QueryParameter(pattern=ID_PATTERN, required=False)
        ] = None,
        updated_since: Instant = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=100_000)] = 0,
    ) -> ReferralPage:
        note(request, None, patient_id)
        query = ReferralQuery(
            statuses=[status.value] if status else [],
            patient_id=patient_id,
            service_id=service_id,
            updated_since=instant(updated_since, "updated_since"),
            limit=limit,
            offset=offset,
        )
        async with db.begin() as conn:
            store = ClinicStore(conn, request.user.clinic_id)
            rows, total = await store.list_referrals(query)
            items = await load_referrals(store, rows)
        return ReferralPage(items=items, total=total, limit=limit, offset=offset)

    @get(
        "/{referral_id:str}",
        operation_id="get_referral",
        summary="One referral with its history",
        opt={**scoped("referrals:read"), **audited("read", "Referral")},
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        referral_id: ReferralId,
        db: NamedDependency[Database],
    ) -> Response[Referral]:
        async with db.begin() as conn:
            store = ClinicStore(conn, request.user.clinic_id)
            row = found(
                await store.get_referral(referral_id), "referral", referral_id, "No such referral"
            )
            note(request, referral_id, row.patient_id)
            [referral] = await load_referrals(store, [row])
        return Response(referral, headers={"ETag": f'"{referral.version}"'})

    @patch(
        "/{referral_id:str}",
        operation_id="update_referral_status",
        summary="Move a referral to its next status, or add its outcome once completed",
        description=(
            "Steps follow the SDOHCC Task lifecycle; any other step answers 409 naming the "
            "allowed next states. A completed referral stays completed, but its outcome may "
            "be added or changed later: send only `outcome` (or `status: completed` with it); "
            "the change is kept in the history and audited. Send `If-Match` with the "
            "referral's ETag to be sure no one changed it since you read it (412 otherwise)."
        ),
        opt={
            **scoped("referrals:write"),
            **audited("update", "Referral"),
            **documented(
                errors={409, 412, 422},
                request=StatusChange,
                example={"status": "completed", "outcome": "Attended 6 of 8 sessions"},
            ),
        },
    )
    async def move(
        self,
        request: Request[Principal, Any, Any],
        referral_id: ReferralId,
        db: NamedDependency[Database],
        if_match: Annotated[
            str | None,
            HeaderParameter(name="If-Match", required=False, pattern=r'^((W/)?"[0-9]{1,9}")?$'),
        ] = None,
    ) -> Response[Referral]:
        data = await decode(request, StatusChange)
        if data.status in NEEDS_REASON and data.reason is None:
            raise ApiError(
                422,
                f"Moving to {data.status.value} needs a reason",
                [FieldError("reason", "required for this status", "required")],
            )
        async with db.begin() as conn:
            store = ClinicStore(conn, request.user.clinic_id)
            row = found(
                await store.get_referral(referral_id, for_update=True),
                "referral",
                referral_id,
                "No such referral",
            )
            now = utcnow()  # after the lock, so history times follow the order of steps
            note(request, referral_id, row.patient_id)
            if if_match and if_match.removeprefix("W/").strip('"') != str(row.version):
                raise ApiError(
                    412,
                    "The referral changed since it was read",
                    [FieldError("If-Match", f"current version is {row.version}", "stale")],
                )
            # A completion sent again with a reason is a step (completed -> completed, 409),
            # not an outcome change: concurrent completions then all answer 200 or 409.
            amending = data.outcome is not None and amends_outcome(Status(row.status), data.status)
            if amending and data.reason is not None and data.status is None:
                raise ApiError(
                    422,
                    "Changing a completed referral's outcome takes no reason",
                    [FieldError("reason", "not allowed with only an outcome", "not_allowed")],
                )
            if amending and data.reason is None:
                await _amend_outcome(store, row, data.outcome, request.user.client_id, now)
                [referral] = await load_referrals(store, [await store.get_referral(referral_id)])
                return Response(referral, headers={"ETag": f'"{referral.version}"'})
            if data.status is None:
                raise ApiError(
                    422,
                    "A status is needed: only a completed referral's outcome changes without one",
                    [FieldError("status", "required", "required")],
                )
            try:
                check(Status(row.status), data.status)
            except TransitionError as exc:
                raise ApiError(
                    409, str(exc), [FieldError("status", str(exc), "invalid_transition")]
                ) from exc
            moved = await store.move_referral(
                referral_id,
                from_status=row.status,
                version=row.version,
                to_status=data.status.value,
                reason=data.reason,
                outcome=data.outcome,
                now=now,
            )
            if not moved:
                raise ApiError(
                    409,
                    "The referral was changed by another request; read it and try again",
                    [FieldError("status", "changed concurrently", "conflict")],
                )
            await store.insert_referral_event(
                referral_id=referral_id,
                from_status=row.status,
                to_status=data.status.value,
                reason=data.reason,
                outcome=data.outcome,
                client_id=request.user.client_id,
                recorded_at=now,
            )
            [referral] = await load_referrals(store, [await store.get_referral(referral_id)])
        REFERRALS.labels(data.status.value).inc()
        return Response(referral, headers={"ETag": f'"{referral.version}"'})
