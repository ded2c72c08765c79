"""Referrals as SDOHCC ServiceRequest + Task, and the directory as HealthcareService."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter

from service.directory.controllers.v1 import directory_service
from service.directory.fhir import (
    CATEGORY_SYSTEM,
    SERVICE_REQUEST_STATUS,
    ReferralFacts,
    healthcare_service,
    service_request,
    task,
)
from service.directory.model import Category
from service.fhir.bundles import searchset
from service.fhir.search import SearchError, parse_date, parse_token
from service.fhir.types import Bundle, HealthcareService, ServiceRequest, Task
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.credentials import Principal
from service.platform.database import Database
from service.platform.documented import documented
from service.platform.errors import FHIR_JSON, field_error
from service.platform.lookup import found
from service.platform.params import PATIENT_REFERENCE, SERVICE_REFERENCE
from service.platform.tenancy import ClinicStore, ReferralQuery, ServiceQuery
from service.referrals.model import Status
from service.screenings.controllers.fhir import ResourceId, _patient_param

Count = Annotated[int, QueryParameter(name="_count", ge=1, le=100)]
Offset = Annotated[int, QueryParameter(name="_offset", ge=0, le=100_000)]
PatientRef = Annotated[str | None, QueryParameter(required=False, pattern=PATIENT_REFERENCE)]
LastUpdated = Annotated[
    list[str] | None, QueryParameter(name="_lastUpdated", required=False, max_items=4)
]
TASK_STATUS = "(" + "|".join(s.value for s in Status) + ")"


SERVICE_TYPE = (
    rf"^({re.escape(CATEGORY_SYSTEM)}\|)?"
    rf"({'|'.join(re.escape(c.value) for c in Category)})$"
)


async def _facts(store: ClinicStore, rows: list[Any]) -> list[ReferralFacts]:
    if not rows:
        return []
    services = await store.services_by_id(sorted({row.service_id for row in rows}))
    clinic = await store.clinic_name()
    facts = []
    for row in rows:
        consent = row.consent
        facts.append(
            ReferralFacts(
                id=row.id,
                patient_id=row.patient_id,
                clinic_id=str(row.clinic_id),
                clinic_name=clinic,
                service=directory_service(services[row.service_id]),
                status=Status(row.status),
                status_reason=row.status_reason,
                note=row.note,
                screening_id=row.screening_id,
                consent_text=(
                    f"Patient consent to share: {'given' if consent.get('given') else 'not given'}"
                    f" ({consent.get('method')}, {consent.get('recorded_at')})"
                ),
                created_at=row.created_at,
                updated_at=row.updated_at,
                outcome=row.outcome,
            )
        )
    return facts


Build = Callable[[ReferralFacts], Any]


async def _search(
    request: Request[Principal, Any, Any],
    db: Database,
    query: ReferralQuery,
    build: Build,
    resource_type: str,
    used: tuple[str, ...],
) -> Response[Any]:
    """Referrals found by ``query``, each built as ``resource_type``, as a searchset."""
    note(request, None, query.patient_id)
    async with db.begin() as conn:
        store = ClinicStore(conn, request.user.clinic_id)
        rows, total = await store.list_referrals(query)
        resources = [build(f) for f in await _facts(store, rows)]
    bundle = searchset(request, resource_type, resources, total, query.offset, query.limit, used)
    return Response(bundle, media_type=FHIR_JSON)


def _read_handler(
    published: type, build: Build, operation_id: str, summary: str
) -> HTTPRouteHandler:
    """GET /fhir/<type>/{id}, for ServiceRequest and Task alike: one referral, built by
    ``build`` as the resource type ``published`` is named for."""
    resource_type = published.__name__

    @get(
        "/{resource_id:str}",
        operation_id=operation_id,
        media_type=FHIR_JSON,
        summary=summary,
        opt={
            **scoped("referrals:read"),
            **audited("read", resource_type),
            **documented(bodies={200: (FHIR_JSON, published)}),
        },
    )
    async def read(
        self: Controller,
        request: Request[Principal, Any, Any],
        resource_id: ResourceId,
        db: NamedDependency[Database],
    ) -> Response[Any]:
        async with db.begin() as conn:
            store = ClinicStore(conn, request.user.clinic_id)
            row = found(await store.get_referral(resource_id), resource_type, resource_id)
            note(request, row.id, row.patient_id)
            [facts] = await _facts(store, [row])
        return Response(build(facts), media_type=FHIR_JSON)

    return read


def _updated(values: list[str] | None) -> list[Any]:
    return [c for value in values or [] for c in parse_date("_lastUpdated", value)]


class ServiceRequestController(Controller):
    path = "/fhir/ServiceRequest"
    tags = ["fhir"]

    @get(
        operation_id="fhir_search_service_request",
        media_type=FHIR_JSON,
        summary="Search referrals as SDOHCC ServiceRequests",
        opt={
            **scoped("referrals:read"),
            **audited("search", "ServiceRequest"),
            **documented(errors={422}, bodies={200: (FHIR_JSON, Bundle)}),
        },
    )
    async def search(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[Database],
        patient: PatientRef = None,
        subject: PatientRef = None,
        status: Annotated[
            str | None,
            QueryParameter(required=False, pattern=r"^(active|on-hold|completed|revoked)$"),
        ] = None,
        last_updated: LastUpdated = None,
        count: Count = 20,
        offset: Offset = 0,
    ) -> Response[Any]:
        try:
            patient_id = _patient_param(patient or subject)
            updated = _updated(last_updated)
        except SearchError as exc:
            raise field_error(exc.status, exc.parameter, exc.message) from exc
        statuses = [s.value for s, sr in SERVICE_REQUEST_STATUS.items() if sr == status]
        query = ReferralQuery(
            statuses=statuses,
            patient_id=patient_id,
            updated_filters=updated,
            limit=count,
            offset=offset,
        )
        used = ("patient", "subject", "status", "_lastUpdated", "_count")
        return await _search(request, db, query, service_request, "ServiceRequest", used)

    read = _read_handler(
        ServiceRequest,
        service_request,
        "fhir_read_service_request",
        "Read a referral as an SDOHCC ServiceRequest",
    )


class TaskController(Controller):
    path = "/fhir/Task"
    tags = ["fhir"]

    @get(
        operation_id="fhir_search_task",
        media_type=FHIR_JSON,
        summary="Search referral Tasks (SDOHCC-TaskForReferralManagement) for polling",
        opt={
            **scoped("referrals:read"),
            **audited("search", "Task"),
            **documented(errors={422}, bodies={200: (FHIR_JSON, Bundle)}),
        },
    )
    async def search(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[Database],
        patient: PatientRef = None,
        owner: Annotated[
            str | None, QueryParameter(required=False, pattern=SERVICE_REFERENCE)
        ] = None,
        status: Annotated[
            str | None,
            QueryParameter(required=False, pattern=rf"^{TASK_STATUS}(,{TASK_STATUS}){{0,7}}$"),
        ] = None,
        last_updated: LastUpdated = None,
        count: Count = 20,
        offset: Offset = 0,
    ) -> Response[Any]:
        try:
            patient_id = _patient_param(patient)
            updated = _updated(last_updated)
            statuses = [Status(s).value for s in status.split(",")] if status else []
        except SearchError as exc:
            raise field_error(exc.status, exc.parameter, exc.message) from exc
        except ValueError:
            raise field_error(
                400, "status", f"one or more of {', '.join(s.value for s in Status)}"
            ) from None
        query = ReferralQuery(
            statuses=statuses,
            patient_id=patient_id,
            service_id=owner.removeprefix("HealthcareService/") if owner else None,
            updated_filters=updated,
            limit=count,
            offset=offset,
        )
        used = ("patient", "owner", "status", "_lastUpdated", "_count")
        return await _search(request, db, query, task, "Task", used)

    read = _read_handler(Task, task, "fhir_read_task", "Read a referral Task")


class HealthcareServiceController(Controller):
    path = "/fhir/HealthcareService"
    tags = ["fhir"]

    @get(
        operation_id="fhir_search_healthcare_service",
        media_type=FHIR_JSON,
        summary="Search the clinic's directory as HealthcareService",
        opt={**scoped("referrals:read"), **documented(bodies={200: (FHIR_JSON, Bundle)})},
    )
    async def search(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[Database],
        service_type: Annotated[
            str | None,
            QueryParameter(name="service-type", required=False, pattern=SERVICE_TYPE),
        ] = None,
        count: Count = 20,
        offset: Offset = 0,
    ) -> Response[Any]:
        category = None
        if service_type is not None:
            try:
                tokens = parse_token("service-type", service_type)
            except SearchError as exc:
                raise field_error(exc.status, exc.parameter, exc.message) from exc
            codes = {code for system, code in tokens if system in (None, CATEGORY_SYSTEM)}
            known = [c for c in Category if c.value in codes]
            if len(known) != 1:
                raise field_error(
                    400, "service-type", f"one of {', '.join(c.value for c in Category)}"
                )
            category = known[0].value
        async with db.begin() as conn:
            rows = await ClinicStore(conn, request.user.clinic_id).search_services(
                ServiceQuery(category=category)
            )
        page = rows[offset : offset + count]
        resources = [healthcare_service(directory_service(r), r.updated_at) for r in page]
        return Response(
            searchset(
                request,
                "HealthcareService",
                resources,
                len(rows),
                offset,
                count,
                ("service-type", "_count"),
            ),
            media_type=FHIR_JSON,
        )

    @get(
        "/{resource_id:str}",
        operation_id="fhir_read_healthcare_service",
        media_type=FHIR_JSON,
        summary="Read one directory service as HealthcareService",
        opt={
            **scoped("referrals:read"),
            **documented(bodies={200: (FHIR_JSON, HealthcareService)}),
        },
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        resource_id: ResourceId,
        db: NamedDependency[Database],
    ) -> Response[Any]:
        async with db.begin() as conn:
            row = await ClinicStore(conn, request.user.clinic_id).get_service(resource_id)
        row = found(row, "HealthcareService", resource_id)
        return Response(
            healthcare_service(directory_service(row), row.updated_at),
            media_type=FHIR_JSON,
        )
