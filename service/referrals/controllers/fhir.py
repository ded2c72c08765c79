"""Referrals as SDOHCC ServiceRequest + Task: search and read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.params import PathParameter, QueryParameter

from service.directory.model import Category
from service.fhir.bundles import add_included, searchset
from service.fhir.params import Search
from service.fhir.search import (
    DATE_SEARCH,
    SearchError,
    date_filters,
    id_groups,
    one_named,
    parse_missing,
    parse_token,
    reference_groups,
    token_matches,
)
from service.fhir.types import Bundle, Organization, ServiceRequest, Task
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.credentials import Principal
from service.platform.documented import documented
from service.platform.errors import FHIR_JSON, field_error
from service.platform.origin import public_origin
from service.platform.params import (
    ID_LIST,
    ID_PATTERN,
    MISSING,
    TOKEN_LIST,
    reference_list,
    repeatable,
)
from service.referrals.controllers import provide_referrals
from service.referrals.fhir import (
    SERVICE_REQUEST_CATEGORIES,
    SERVICE_REQUEST_STATUS,
    ReferralFacts,
    referral_coding,
    service_request,
    task,
)
from service.referrals.repository import ReferralQuery
from service.referrals.service import Referrals

ResourceId = Annotated[str, PathParameter(pattern=ID_PATTERN, description="FHIR resource id")]


def _codes(name: str, values: list[str] | None, codes: tuple[str, ...]) -> list[list[str]]:
    """Each repeat of a code parameter, a comma-separated list of ``codes``."""
    groups = [value.split(",") for value in values or []]
    for group in groups:
        unknown = sorted(set(group) - set(codes))
        if unknown:
            raise SearchError(name, f"{unknown[0]!r} is not one of {', '.join(codes)}")
    return groups


Ids = repeatable(ID_LIST, "_id")
PatientRefs = repeatable(reference_list("Patient"))
Dates = repeatable(DATE_SEARCH)
LastUpdated = repeatable(DATE_SEARCH, "_lastUpdated")
Tokens = repeatable(TOKEN_LIST)
TASK_STATUSES = (
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
    "in-progress", "on-hold", "failed", "completed", "entered-in-error",
)  # fmt: skip
"""Every FHIR TaskStatus; Belong's referrals take the eight of :class:`Status`."""
REQUEST_STATUSES = (
    "draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown",
)  # fmt: skip
"""Every FHIR RequestStatus; Belong's referrals are active, on-hold, revoked or completed."""


def _code_list(codes: tuple[str, ...]) -> str:
    code = "(" + "|".join(codes) + ")"
    return rf"^{code}(,{code}){{0,11}}$"


def _parsed(values: list[str] | None, parse: Callable[[str], Any]) -> list[Any]:
    """Each repeat of a parameter, parsed: a list per repeat."""
    return [parse(value) for value in values or []]


def _any_of(column: str, groups: list[list[str]]) -> list[tuple[str, list[str]]]:
    return [(column, group) for group in groups]


def _base(request: Request[Any, Any, Any]) -> str:
    return f"{public_origin(request)}/fhir"


Build = Callable[[ReferralFacts], Any]


async def _search(
    request: Request[Principal, Any, Any],
    referrals: NamedDependency[Referrals],
    query: ReferralQuery,
    build: Build,
    resource_type: str,
    patient_id: str | None,
    included: tuple[tuple[str, Build], ...] = (),
) -> Response[Any]:
    """Referrals found by ``query``, most recently changed first, each built as
    ``resource_type``, as a searchset paged by (updated_at, id), with the resources
    ``included`` names (type, builder) for each of the page's."""
    note(request, None, patient_id)
    paging = Search.of(request, "-_lastUpdated")
    facts, total = await referrals.facts(replace(query, limit=paging.fetch, after=paging.keyset))
    page, following = paging.page(facts, lambda f: (f.updated_at.isoformat(), f.id))
    resources = [build(f) for f in page]
    bundle = searchset(request, resource_type, resources, total, paging, following)
    add_included(request, bundle, [(kind, make(f)) for kind, make in included for f in page])
    return Response(bundle, media_type=FHIR_JSON)


def _search_error(exc: SearchError) -> Exception:
    return field_error(exc.status, exc.parameter, exc.message)


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
        ids: Ids = None,
        patient: PatientRefs = None,
        subject: PatientRefs = None,
        category: Tokens = None,
        code: Tokens = None,
        authored: Dates = None,
        status: repeatable(_code_list(REQUEST_STATUSES)) = None,
        last_updated: LastUpdated = None,
        revinclude: repeatable(r"^Task:focus$", "_revinclude", most=1) = None,
    ) -> Response[Any]:
        try:
            patients = reference_groups("patient", patient, "Patient", _base(request))
            patients += reference_groups("subject", subject, "Patient", _base(request))
            categories = _parsed(category, lambda v: parse_token("category", v))
            codes = _parsed(code, lambda v: parse_token("code", v))
            any_of = [
                *_any_of("id", id_groups(ids)),
                *_any_of("patient_id", patients),
                *_any_of("category", [_categories_coded(tokens) for tokens in codes]),
                *_any_of(
                    "status", [_statuses_of(g) for g in _codes("status", status, REQUEST_STATUSES)]
                ),
            ]
            if not all(_any_category(tokens) for tokens in categories):
                any_of.append(("id", []))  # every ServiceRequest has the same categories
            query = ReferralQuery(
                any_of=any_of,
                updated_filters=date_filters("_lastUpdated", last_updated),
                created_filters=date_filters("authored", authored),
            )
            _codes("_revinclude", revinclude, ("Task:focus",))
        except SearchError as exc:
            raise _search_error(exc) from exc
        included = (("Task", task),) if revinclude else ()
        return await _search(
            request,
            referrals,
            query,
            service_request,
            "ServiceRequest",
            one_named(patients),
            included,
        )

    read = _read_handler(
        ServiceRequest,
        service_request,
        "fhir_read_service_request",
        "Read a referral as an SDOHCC ServiceRequest",
    )


def _any_category(tokens: list[tuple[str | None, str]]) -> bool:
    return any(
        token_matches(token, coding.system, coding.code)
        for token in tokens
        for coding in SERVICE_REQUEST_CATEGORIES
    )


def _categories_coded(tokens: list[tuple[str | None, str]]) -> list[str]:
    """The service categories whose referrals' ServiceRequest.code one of ``tokens`` matches."""
    return [
        category.value
        for category in Category
        if any(
            token_matches(token, referral_coding(category).system, referral_coding(category).code)
            for token in tokens
        )
    ]


def _statuses_of(request_statuses: list[str]) -> list[str]:
    """The referral statuses shown as any of these ServiceRequest statuses."""
    return [s.value for s, shown in SERVICE_REQUEST_STATUS.items() if shown in request_statuses]


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
        ids: Ids = None,
        patient: PatientRefs = None,
        focus: repeatable(reference_list("ServiceRequest")) = None,
        owner: repeatable(reference_list("HealthcareService")) = None,
        owner_missing: Annotated[
            str | None,
            QueryParameter(name="owner:missing", required=False, schema_extra={"pattern": MISSING}),
        ] = None,
        status: repeatable(_code_list(TASK_STATUSES)) = None,
        last_updated: LastUpdated = None,
        include: repeatable(r"^Task:focus$", "_include", most=1) = None,
    ) -> Response[Any]:
        try:
            patients = reference_groups("patient", patient, "Patient", _base(request))
            any_of = [
                *_any_of("id", id_groups(ids)),
                *_any_of("id", reference_groups("focus", focus, "ServiceRequest", _base(request))),
                *_any_of("patient_id", patients),
                *_any_of(
                    "service_id",
                    reference_groups("owner", owner, "HealthcareService", _base(request)),
                ),
                *_any_of("status", _codes("status", status, TASK_STATUSES)),
            ]
            if owner_missing is not None and parse_missing("owner:missing", owner_missing):
                any_of.append(("id", []))  # every Task has its owner, the service
            query = ReferralQuery(
                any_of=any_of,
                updated_filters=date_filters("_lastUpdated", last_updated),
            )
            _codes("_include", include, ("Task:focus",))
        except SearchError as exc:
            raise _search_error(exc) from exc
        included = (("ServiceRequest", service_request),) if include else ()
        return await _search(request, referrals, query, task, "Task", one_named(patients), included)

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
