"""A clinic's directory of support services: CRUD, search and import."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromQuery, PathParameter, QueryParameter

from service.directory.importing import ImportFileError, ImportReport, OnError, apply, parse_file
from service.directory.model import Category, DirectoryService, ServiceDetails
from service.matching.model import EARTH_RADIUS_KM, distance_km
from service.patients.model import Modality, PainCondition
from service.platform.auth import scoped
from service.platform.body import decode, document
from service.platform.credentials import Principal
from service.platform.database import Database, new_id, utcnow
from service.platform.documented import JSON, documented, link
from service.platform.errors import ApiError, FieldError
from service.platform.lookup import NotFound, found
from service.platform.params import ID_PATTERN, NEAR
from service.platform.tenancy import ClinicStore, ServiceQuery

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


class ServiceEntry(ServiceDetails, frozen=True, kw_only=True):
    id: str
    source_system: str
    """api, hsds or fhir: where the entry came from."""
    source_id: str
    created_at: datetime
    updated_at: datetime
    distance_km: float | None = None
    """From the ``near`` point, when searching by distance."""


class ServicePage(msgspec.Struct):
    items: list[ServiceEntry]
    total: int
    limit: int
    offset: int


def entry(row: Any, distance: float | None = None) -> ServiceEntry:
    return msgspec.convert(
        {
            **row.details,
            "id": row.id,
            "source_system": row.source_system,
            "source_id": row.source_id,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "distance_km": round(distance, 2) if distance is not None else None,
        },
        ServiceEntry,
    )


def directory_service(row: Any) -> DirectoryService:
    return stored_service(row.id, row.details)


def stored_service(service_id: str, details: dict[str, Any]) -> DirectoryService:
    """A directory entry as stored (its ``details``), as the domain's service."""
    return msgspec.convert({**details, "id": service_id}, DirectoryService)


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


def _bounds(lat: float, lon: float, radius_km: float) -> list[tuple[float, float, float, float]]:
    """Lat/lon boxes holding every point within ``radius_km`` (then checked exactly): one box,
    or two where the circle crosses the antimeridian."""
    angle = radius_km / EARTH_RADIUS_KM
    dlat = math.degrees(angle)
    low_lat, high_lat = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    reach = math.sin(angle) / math.cos(math.radians(lat)) if abs(lat) < 90 else 2.0
    if low_lat <= -90 or high_lat >= 90 or reach >= 1 or angle >= math.pi / 2:
        return [(low_lat, high_lat, -180.0, 180.0)]
    dlon = math.degrees(math.asin(reach))  # the circle's widest longitude
    west, east = lon - dlon, lon + dlon
    if west < -180:
        return [(low_lat, high_lat, west + 360, 180.0), (low_lat, high_lat, -180.0, east)]
    if east > 180:
        return [(low_lat, high_lat, west, 180.0), (low_lat, high_lat, -180.0, east - 360)]
    return [(low_lat, high_lat, west, east)]


class DirectoryController(Controller):
    path = "/v1/directory"
    tags = ["directory"]

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
        request: Request[Principal, Any, Any],
        db: NamedDependency[Database],
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
        point = _near(near) if near is not None else None
        query = ServiceQuery(
            category=category.value if category else None,
            condition=condition.value if condition else None,
            language=language.split("-", 1)[0].lower() if language else None,
            modality=modality.value if modality else None,
            accepting=accepting,
            bounds=_bounds(*point, radius_km) if point else (),
        )
        async with db.begin() as conn:
            rows = await ClinicStore(conn, request.user.clinic_id).search_services(query)
        found: list[tuple[Any, float | None]] = [(row, None) for row in rows]
        if point is not None:
            lat, lon = map(math.radians, point)
            found = [
                (row, d)
                for row in rows
                if (
                    d := distance_km(
                        lat, lon, math.radians(row.latitude), math.radians(row.longitude)
                    )
                )
                <= radius_km
            ]
            found.sort(key=lambda pair: (pair[1], pair[0].name, pair[0].id))
        page = found[offset : offset + limit]
        return ServicePage(
            items=[entry(row, d) for row, d in page], total=len(found), limit=limit, offset=offset
        )

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
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[Database],
    ) -> Response[ServiceEntry]:
        data = await decode(request, ServiceDetails)
        _check(data)
        service_id = str(new_id())
        async with db.begin() as conn:
            store = ClinicStore(conn, request.user.clinic_id)
            await store.save_service(
                service_id, "api", service_id, msgspec.to_builtins(data), utcnow()
            )
            row = await store.get_service(service_id)
        request.app.state.directory_cache.forget(request.user.clinic_id)
        return Response(
            entry(row),
            status_code=201,
            headers={"Location": f"/v1/directory/services/{service_id}"},
        )

    @get(
        "/services/{service_id:str}",
        operation_id="get_service",
        summary="One directory service",
        opt=scoped("referrals:read"),
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        service_id: ServiceId,
        db: NamedDependency[Database],
    ) -> ServiceEntry:
        async with db.begin() as conn:
            row = await ClinicStore(conn, request.user.clinic_id).get_service(service_id)
        return entry(found(row, "service", service_id))

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
        db: NamedDependency[Database],
    ) -> ServiceEntry:
        data = await decode(request, ServiceDetails)
        _check(data)
        async with db.begin() as conn:
            store = ClinicStore(conn, request.user.clinic_id)
            if not await store.replace_service(service_id, msgspec.to_builtins(data), utcnow()):
                raise NotFound("service", service_id)
            row = await store.get_service(service_id)
        request.app.state.directory_cache.forget(request.user.clinic_id)
        return entry(row)

    @delete(
        "/services/{service_id:str}",
        operation_id="delete_service",
        summary="Withdraw a service (referrals already made keep their record of it)",
        opt=scoped("directory:write"),
    )
    async def remove(
        self,
        request: Request[Principal, Any, Any],
        service_id: ServiceId,
        db: NamedDependency[Database],
    ) -> None:
        async with db.begin() as conn:
            if not await ClinicStore(conn, request.user.clinic_id).delete_service(
                service_id, utcnow()
            ):
                raise NotFound("service", service_id)
        request.app.state.directory_cache.forget(request.user.clinic_id)

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
        db: NamedDependency[Database],
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
        async with db.begin() as conn:
            report = await apply(
                ClinicStore(conn, request.user.clinic_id), parsed, on_error, utcnow()
            )
        request.app.state.directory_cache.forget(request.user.clinic_id)
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
