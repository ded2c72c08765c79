"""The clinic's directory as FHIR HealthcareService (SDOHCC-HealthcareService)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from service.directory.controllers import provide_directory
from service.directory.fhir import CATEGORY_SYSTEM, healthcare_service
from service.directory.model import Category
from service.directory.service import Directory
from service.fhir.bundles import searchset
from service.fhir.params import Search
from service.fhir.search import SearchError, parse_token
from service.fhir.types import Bundle, HealthcareService
from service.platform.auth import scoped
from service.platform.credentials import Principal
from service.platform.documented import documented
from service.platform.errors import FHIR_JSON, field_error
from service.platform.params import ID_PATTERN

ResourceId = Annotated[str, PathParameter(pattern=ID_PATTERN, description="FHIR resource id")]
SERVICE_TYPE = (
    rf"^({re.escape(CATEGORY_SYSTEM)}\|)?"
    rf"({'|'.join(re.escape(c.value) for c in Category)})$"
)


def _category(service_type: str) -> str:
    """The one Belong category a ``service-type`` token names."""
    try:
        tokens = parse_token("service-type", service_type)
    except SearchError as exc:
        raise field_error(exc.status, exc.parameter, exc.message) from exc
    codes = {code for system, code in tokens if system in (None, CATEGORY_SYSTEM)}
    known = [c for c in Category if c.value in codes]
    if len(known) != 1:
        raise field_error(400, "service-type", f"one of {', '.join(c.value for c in Category)}")
    return known[0].value


class HealthcareServiceController(Controller):
    path = "/fhir/HealthcareService"
    tags = ["fhir"]
    dependencies = {"directory": Provide(provide_directory, sync_to_thread=False)}

    @get(
        operation_id="fhir_search_healthcare_service",
        media_type=FHIR_JSON,
        summary="Search the clinic's directory as HealthcareService",
        opt={
            **scoped("referrals:read"),
            **documented(bodies={200: (FHIR_JSON, Bundle)}, search=True),
        },
    )
    async def search(
        self,
        request: Request[Principal, Any, Any],
        directory: NamedDependency[Directory],
        service_type: Annotated[
            str | None,
            QueryParameter(name="service-type", required=False, pattern=SERVICE_TYPE),
        ] = None,
    ) -> Response[Any]:
        category = _category(service_type) if service_type is not None else None
        paging = Search.of(request, "name")
        after = (paging.after.value or "", paging.after.id) if paging.after else None
        found, total = await directory.listings(category, paging.fetch, after)
        listed, following = paging.page(found, lambda f: (f.service.name, f.service.id))
        resources = [healthcare_service(one.service, one.updated_at) for one in listed]
        return Response(
            searchset(request, "HealthcareService", resources, total, paging, following),
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
        self, resource_id: ResourceId, directory: NamedDependency[Directory]
    ) -> Response[Any]:
        listed = await directory.listing(resource_id, "HealthcareService")
        return Response(healthcare_service(listed.service, listed.updated_at), media_type=FHIR_JSON)
