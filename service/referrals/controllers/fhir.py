"""Referrals as SDOHCC ServiceRequest + Task: search and read."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.params import PathParameter, QueryParameter

from service.fhir.bundles import searchset
from service.fhir.params import Search
from service.fhir.search import SearchError, parse_date
from service.fhir.types import Bundle, Organization, ServiceRequest, Task
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.credentials import Principal
from service.platform.documented import documented
from service.platform.errors import FHIR_JSON, field_error
from service.platform.params import FHIR_ID, ID_PATTERN, PATIENT_REFERENCE, SERVICE_REFERENCE
from service.referrals.controllers import provide_referrals
from service.referrals.fhir import SERVICE_REQUEST_STATUS, ReferralFacts, service_request, task
from service.referrals.model import Status
from service.referrals.repository import ReferralQuery
from service.referrals.service import Referrals

ResourceId = Annotated[str, PathParameter(pattern=ID_PATTERN, description="FHIR resource id")]
PatientRef = Annotated[str | None, QueryParameter(required=False, pattern=PATIENT_REFERENCE)]
LastUpdated = Annotated[
    list[str] | None, QueryParameter(name="_lastUpdated", required=False, max_items=4)
]
TASK_STATUS = "(" + "|".join(s.value for s in Status) + ")"


def _patient_param(value: str | None) -> str | None:
    """The patient id a ``patient`` (or ``subject``) parameter names: an id or Patient/<id>."""
    if value is None:
        return None
    ident = value.removeprefix("Patient/")
    if re.fullmatch(FHIR_ID, ident) is None:
        raise SearchError("patient", f"{value!r} is not a patient id or Patient/<id>")
    return ident


Build = Callable[[ReferralFacts], Any]


async def _search(
    request: Request[Principal, Any, Any],
    referrals: NamedDependency[Referrals],
    query: ReferralQuery,
    build: Build,
    resource_type: str,
) -> Response[Any]:
    """Referrals found by ``query``, most recently changed first, each built as
    ``resource_type``, as a searchset paged by (updated_at, id)."""
    note(request, None, query.patient_id)
    paging = Search.of(request, "-_lastUpdated")
    after = (paging.after.instant(), paging.after.id) if paging.after else None
    facts, total = await referrals.facts(replace(query, limit=paging.fetch, after=after))
    page, following = paging.page(facts, lambda f: (f.updated_at.isoformat(), f.id))
    resources = [build(f) for f in page]
    bundle = searchset(request, resource_type, resources, total, paging, following)
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
        referrals: NamedDependency[Referrals],
    ) -> Response[Any]:
        facts = await referrals.fact(resource_id, resource_type)
        note(request, facts.id, facts.patient_id)
        return Response(build(facts), media_type=FHIR_JSON)

    return read


def _updated(values: list[str] | None) -> list[Any]:
    return [c for value in values or [] for c in parse_date("_lastUpdated", value)]


class ServiceRequestController(Controller):
    path = "/fhir/ServiceRequest"
    tags = ["fhir"]
    dependencies = {"referrals": Provide(provide_referrals, sync_to_thread=False)}

    @get(
        operation_id="fhir_search_service_request",
        media_type=FHIR_JSON,
        summary="Search referrals as SDOHCC ServiceRequests",
        opt={
            **scoped("referrals:read"),
            **audited("search", "ServiceRequest"),
            **documented(errors={422}, bodies={200: (FHIR_JSON, Bundle)}, search=True),
        },
    )
    async def search(
        self,
        request: Request[Principal, Any, Any],
        referrals: NamedDependency[Referrals],
        patient: PatientRef = None,
        subject: PatientRef = None,
        status: Annotated[
            str | None,
            QueryParameter(required=False, pattern=r"^(active|on-hold|completed|revoked)$"),
        ] = None,
        last_updated: LastUpdated = None,
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
        )
        return await _search(request, referrals, query, service_request, "ServiceRequest")

    read = _read_handler(
        ServiceRequest,
        service_request,
        "fhir_read_service_request",
        "Read a referral as an SDOHCC ServiceRequest",
    )


class TaskController(Controller):
    path = "/fhir/Task"
    tags = ["fhir"]
    dependencies = {"referrals": Provide(provide_referrals, sync_to_thread=False)}

    @get(
        operation_id="fhir_search_task",
        media_type=FHIR_JSON,
        summary="Search referral Tasks (SDOHCC-TaskForReferralManagement) for polling",
        opt={
            **scoped("referrals:read"),
            **audited("search", "Task"),
            **documented(errors={422}, bodies={200: (FHIR_JSON, Bundle)}, search=True),
        },
    )
    async def search(
        self,
        request: Request[Principal, Any, Any],
        referrals: NamedDependency[Referrals],
        patient: PatientRef = None,
        owner: Annotated[
            str | None, QueryParameter(required=False, pattern=SERVICE_REFERENCE)
        ] = None,
        status: Annotated[
            str | None,
            QueryParameter(required=False, pattern=rf"^{TASK_STATUS}(,{TASK_STATUS}){{0,7}}$"),
        ] = None,
        last_updated: LastUpdated = None,
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
        )
        return await _search(request, referrals, query, task, "Task")

    read = _read_handler(Task, task, "fhir_read_task", "Read a referral Task")


class OrganizationController(Controller):
    path = "/fhir/Organization"
    tags = ["fhir"]
    dependencies = {"referrals": Provide(provide_referrals, sync_to_thread=False)}

    @get(
        "/{resource_id:str}",
        operation_id="fhir_read_organization",
        media_type=FHIR_JSON,
        summary="Read the caller's clinic as the Organization its referrals name as requester",
        opt={
            **scoped("referrals:read"),
            **documented(bodies={200: (FHIR_JSON, Organization)}),
        },
    )
    async def read(
        self, resource_id: ResourceId, referrals: NamedDependency[Referrals]
    ) -> Response[Any]:
        return Response(await referrals.organization(resource_id), media_type=FHIR_JSON)
