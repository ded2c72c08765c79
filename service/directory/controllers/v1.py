"""A clinic's directory of support services: CRUD, search and import."""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, PathParameter, QueryParameter

from service.directory.controllers import provide_directory
from service.directory.importing import ImportFileError, ImportReport, OnError, parse_file
from service.directory.model import Category, ServiceDetails
from service.directory.repository import ServiceQuery
from service.directory.service import Directory, ServiceEntry
from service.patients.model import Modality, PainCondition
from service.platform.auth import scoped
from service.platform.body import decode, document
from service.platform.credentials import Principal
from service.platform.documented import JSON, documented, link
from service.platform.errors import ApiError, FieldError
from service.platform.params import ID_PATTERN, NEAR

ServiceId = Annotated[str, PathParameter(pattern=ID_PATTERN, description="Directory service id")]


DIRECTORY_FILE = {
    "description": (
        "An Open Referral HSDS 3.0 list of services (or a page with `contents`) using the "
        "`belong` taxonomy attributes, or a FHIR R4 Bundle of HealthcareService with its "
        "Location and Organization entries. Records that cannot be read are reported by "
        "index (422 with on_error=reject-file)."
    ),
    "oneOf": [
        {"type": "array", "items": {"type": "object"}},
        {
            "type": "object",
            "required": ["contents"],
            "properties": {"contents": {"type": "array", "items": {"type": "object"}}},
        },
        {
            "type": "object",
            "required": ["resourceType", "entry"],
            "properties": {
                "resourceType": {"const": "Bundle"},
                "entry": {"type": "array", "items": {"type": "object"}},
            },
        },
    ],
}
"""The import body: read from raw bytes, which Litestar cannot describe."""


class ServicePage(msgspec.Struct):
    items: list[ServiceEntry]
    total: int
    limit: int
    offset: int


def _check(details: ServiceDetails) -> None:
    problems = details.problems()
    if problems:
        raise ApiError(
            422,
            "The service entry is inconsistent",
            [FieldError(field, message, "inconsistent") for field, message in problems],
        )


def _near(text: str) -> tuple[float, float]:
    try:
        lat_text, lon_text = text.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ApiError(
            400, "near must be 'lat,lon'", [FieldError("near", "expected lat,lon", "invalid")]
        ) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat + lon):
        raise ApiError(
            400,
            "near is out of range",
            [FieldError("near", "latitude -90..90, longitude -180..180", "out_of_range")],
        )
    return lat, lon


class DirectoryController(Controller):
    path = "/v1/directory"
    tags = ["directory"]
    dependencies = {"directory": Provide(provide_directory, sync_to_thread=False)}

    @get(
        "/services",
        operation_id="search_services",
        summary="Search the clinic's directory",
        description=(
            "Filters combine. `near=lat,lon` with `radius_km` keeps services whose location "
            "lies within that great-circle distance, nearest first."
        ),
        opt={**scoped("referrals:read"), **documented(schemas=(ServicePage,))},
    )
    async def search(
        self,
        directory: NamedDependency[Directory],
        name: Annotated[
            str | None,
            QueryParameter(
                pattern=r"^[^\x00]{1,200}$",
                required=False,
                description="Text the service's name contains, in any case",
            ),
        ] = None,
        category: FromQuery[Category | None] = None,
        condition: FromQuery[PainCondition | None] = None,
        language: Annotated[
            str | None,
            QueryParameter(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", required=False),
        ] = None,
        modality: FromQuery[Modality | None] = None,
        accepting: FromQuery[bool | None] = None,
        near: Annotated[
            str | None,
            QueryParameter(pattern=NEAR, required=False, description="lat,lon in degrees"),
        ] = None,
        radius_km: Annotated[float, QueryParameter(gt=0, le=1000)] = 25.0,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=100_000)] = 0,
    ) -> ServicePage:
        query = ServiceQuery(
            name=name,
            category=category.value if category else None,
            condition=condition.value if condition else None,
            language=language.split("-", 1)[0].lower() if language else None,
            modality=modality.value if modality else None,
            accepting=accepting,
        )
        point = _near(near) if near is not None else None
        items, total = await directory.search(query, point, radius_km, limit, offset)
        return ServicePage(items=items, total=total, limit=limit, offset=offset)

    @post(
        "/services",
        operation_id="create_service",
        summary="Add a service to the directory",
        opt={
            **scoped("directory:write"),
            **documented(
                errors={422},
                request=ServiceDetails,
                schemas=(ServiceEntry,),
                links={
                    "GetService": link("get_service", service_id="$response.body#/id"),
                    "ReplaceService": link("replace_service", service_id="$response.body#/id"),
                    "DeleteService": link("delete_service", service_id="$response.body#/id"),
                },
            ),
        },
    )
    async def create(
        self, request: Request[Principal, Any, Any], directory: NamedDependency[Directory]
    ) -> Response[ServiceEntry]:
        data = await decode(request, ServiceDetails)
        _check(data)
        created = await directory.create(data)
        return Response(
            created,
            status_code=201,
            headers={"Location": f"/v1/directory/services/{created.id}"},
        )

    @get(
        "/services/{service_id:str}",
        operation_id="get_service",
        summary="One directory service",
        opt=scoped("referrals:read"),
    )
    async def read(
        self, service_id: ServiceId, directory: NamedDependency[Directory]
    ) -> ServiceEntry:
        return await directory.read(service_id)

    @put(
        "/services/{service_id:str}",
        operation_id="replace_service",
        summary="Replace a directory service",
        opt={**scoped("directory:write"), **documented(errors={422}, request=ServiceDetails)},
    )
    async def replace(
        self,
        request: Request[Principal, Any, Any],
        service_id: ServiceId,
        directory: NamedDependency[Directory],
    ) -> ServiceEntry:
        data = await decode(request, ServiceDetails)
        _check(data)
        return await directory.replace(service_id, data)

    @delete(
        "/services/{service_id:str}",
        operation_id="delete_service",
        summary="Withdraw a service (referrals already made keep their record of it)",
        opt=scoped("directory:write"),
    )
    async def remove(self, service_id: ServiceId, directory: NamedDependency[Directory]) -> None:
        await directory.remove(service_id)

    @post(
        "/import",
        operation_id="import_directory",
        summary="Import an Open Referral HSDS 3.0 file or a FHIR Bundle of HealthcareService",
        description=(
            "Idempotent by the records' source ids. With `on_error=reject-file` (the default) "
            "a file with any bad record changes nothing and answers 422 with the report; "
            "with `skip-record` the good records are applied and the bad ones reported."
        ),
        opt={
            **scoped("directory:write"),
            **documented(errors={422}, request=DIRECTORY_FILE, bodies={200: (JSON, ImportReport)}),
        },
        status_code=200,
    )
    async def import_file(
        self,
        request: Request[Principal, Any, Any],
        directory: NamedDependency[Directory],
        on_error: FromQuery[OnError] = OnError.REJECT_FILE,
    ) -> Response[ImportReport]:
        try:
            raw = document(await request.body())
        except msgspec.DecodeError as exc:
            raise ApiError(
                400, f"Not JSON: {exc}", [FieldError("body", str(exc), "malformed")]
            ) from exc
        try:
            parsed = parse_file(raw)
        except ImportFileError as exc:
            raise ApiError(400, str(exc), [FieldError("body", str(exc), "invalid")]) from exc
        report = await directory.import_file(parsed, on_error)
        if not report.applied:
            raise ApiError(
                422,
                f"{len(report.rejected)} record(s) rejected; nothing was imported "
                "(on_error=skip-record imports the rest)",
                [
                    FieldError(f"[{r.index}]", "; ".join(r.reasons), "rejected")
                    for r in report.rejected
                ],
            )
        return Response(report)
