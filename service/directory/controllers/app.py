"""The directory's pages in the clinician app: search, a service in words, adding and
editing a service, and importing a file, on the same :class:`Directory` as /v1."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import PathParameter
from litestar.response import Redirect, Response, Template

from service.directory import words
from service.directory.controllers import provide_directory
from service.directory.forms import (
    LABELS,
    NEW_SERVICE,
    SEARCH_LABELS,
    Params,
    Search,
    read_search,
    read_service,
    service_values,
)
from service.directory.importing import ImportFileError, ImportReport, OnError, parse_file
from service.directory.model import CAPACITY_WORDS, MIN_ANSWERED, Category
from service.directory.service import Directory, ServiceEntry
from service.patients.model import Modality, PainCondition
from service.platform.auth import scoped
from service.platform.body import document
from service.platform.errors import ApiError
from service.platform.params import ID_PATTERN
from service.web.pages import AppController, app_user, page, see_other

ServiceId = Annotated[str, PathParameter(pattern=ID_PATTERN)]
READ = scoped("referrals:read")
WRITE = scoped("directory:write")


def _options() -> dict[str, Any]:
    """The choices the search and the service form offer, in words."""
    return {
        "categories": [(c.value, words.CATEGORIES[c]) for c in Category],
        "conditions": [(c.value, words.CONDITIONS[c]) for c in PainCondition],
        "modalities": [(m.value, words.MODALITIES[m]) for m in Modality],
        "words": words,
    }


def _can_write(request: Request[Any, Any, Any]) -> bool:
    user = app_user(request)
    return user is not None and "directory:write" in user.principal.scopes


def _languages(search: Search) -> list[tuple[str, str]]:
    chosen = search.values.get("language", "")
    known = sorted(words.LANGUAGES.items(), key=lambda item: item[1])
    if chosen and chosen not in words.LANGUAGES:
        known.append((chosen, chosen))
    return known


def _page_sizes(search: Search) -> list[tuple[str, str]]:
    sizes = ["20", "50", "100", "200"]
    chosen = search.values.get("limit", "")
    if chosen and chosen not in sizes and "limit" not in search.errors:
        sizes = sorted({*sizes, chosen}, key=int)
    return [(size, size) for size in sizes]


def _summary(entry: ServiceEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "name": entry.name,
        "organization": entry.organization,
        "category": words.CATEGORIES[entry.category],
        "modalities": [words.MODALITIES[m] for m in entry.modalities],
        "languages": [words.language(tag) for tag in entry.languages],
        "accepting": words.takes_referrals(entry),
        "referrals": words.referrals(entry),
        "capacity": CAPACITY_WORDS[entry.capacity_status] if entry.capacity_status else None,
        "distance": entry.distance_km,
    }


def _search_page(
    request: Request[Any, Any, Any],
    search: Search,
    results: list[dict[str, Any]] | None = None,
    total: int = 0,
) -> Template:
    shown_to = search.offset + len(results or [])
    return page(
        request,
        "directory/search.html",
        status_code=400 if search.errors else 200,
        search=search,
        labels=SEARCH_LABELS,
        languages=_languages(search),
        page_sizes=_page_sizes(search),
        results=results,
        total=total,
        shown_from=search.offset + 1,
        shown_to=shown_to,
        previous=search.link(max(0, search.offset - search.limit)) if search.offset else None,
        next=search.link(shown_to) if shown_to < total else None,
        can_write=_can_write(request),
        **_options(),
    )


def _form_page(
    request: Request[Any, Any, Any],
    values: dict[str, Any],
    errors: dict[str, str],
    entry: ServiceEntry | None = None,
) -> Template:
    return page(
        request,
        "directory/edit.html",
        status_code=422 if errors else 200,
        service=entry,
        values=values,
        errors=errors,
        labels=LABELS,
        action=f"/app/directory/{entry.id}" if entry else "/app/directory",
        **_options(),
    )


def _import_page(
    request: Request[Any, Any, Any], error: str | None = None, on_error: str = "reject-file"
) -> Template:
    settings = request.app.state.settings
    return page(
        request,
        "directory/import.html",
        status_code=422 if error else 200,
        error=error,
        on_error=on_error,
        limit=words.size(settings.max_body_bytes),
    )


def _records(report: ImportReport) -> list[dict[str, Any]]:
    """Every record of an import's file in the file's order, with what became of it."""
    records = [
        {
            "index": r.index,
            "source_id": r.source_id,
            "name": r.name,
            "outcome": "Added" if r.created else "Updated",
            "reasons": [],
        }
        for r in report.imported
    ]
    records.extend(
        {
            "index": r.index,
            "source_id": r.source_id,
            "name": None,
            "outcome": "Left out" if report.applied else "Cannot be read",
            "reasons": r.reasons,
        }
        for r in report.rejected
    )
    return sorted(records, key=lambda record: record["index"])


def _too_large(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    """413 for an import file above the app's body limit, with the way to import it."""
    settings = request.app.state.settings
    user = app_user(request)
    return page(
        request,
        "directory/too_large.html",
        status_code=413,
        limit=words.size(settings.max_body_bytes),
        clinic=user.clinic_name if user else "your clinic",
    )


class DirectoryPages(AppController):
    path = "/app/directory"
    dependencies = {"directory": Provide(provide_directory, sync_to_thread=False)}

    @get("/", opt=READ)
    async def search(
        self, request: Request[Any, Any, Any], directory: NamedDependency[Directory]
    ) -> Template:
        search = read_search(Params(request.query_params))
        if search.errors:
            return _search_page(request, search)
        entries, total = await directory.search(
            search.query, search.near, search.radius_km, search.limit, search.offset
        )
        return _search_page(request, search, [_summary(e) for e in entries], total)

    @get("/new", opt=WRITE)
    async def new(self, request: Request[Any, Any, Any]) -> Template:
        return _form_page(request, dict(NEW_SERVICE), {})

    @post("/", opt=WRITE)
    async def create(
        self, request: Request[Any, Any, Any], directory: NamedDependency[Directory]
    ) -> Template | Redirect:
        sent = read_service(Params(await request.form()))
        if sent.details is None:
            return _form_page(request, sent.values, sent.errors)
        created = await directory.create(sent.details)
        return see_other(f"/app/directory/{created.id}?added=1")

    @get("/import", opt=WRITE)
    async def import_form(self, request: Request[Any, Any, Any]) -> Template:
        return _import_page(request)

    @post("/import", opt=WRITE, exception_handlers={RequestEntityTooLarge: _too_large})
    async def import_file(
        self, request: Request[Any, Any, Any], directory: NamedDependency[Directory]
    ) -> Template:
        form = await request.form()
        on_error = form.get("on_error", OnError.REJECT_FILE.value)
        if on_error not in {mode.value for mode in OnError}:
            return _import_page(request, "Choose what to do with records that cannot be read")
        upload = form.get("file")
        content = await upload.read() if isinstance(upload, UploadFile) else b""
        if not content:
            return _import_page(request, "Choose a file to import", on_error)
        try:
            parsed = parse_file(document(content))
        except (msgspec.DecodeError, UnicodeDecodeError):
            return _import_page(
                request, "This file is not JSON, so it cannot be imported", on_error
            )
        except ApiError as exc:  # nested too deep
            return _import_page(request, f"This file cannot be imported: {exc.detail}", on_error)
        except ImportFileError:
            return _import_page(
                request,
                "This file is JSON but neither an Open Referral HSDS 3.0 list of services "
                "nor a FHIR Bundle of HealthcareService",
                on_error,
            )
        report = await directory.import_file(parsed, OnError(on_error))
        return page(
            request,
            "directory/report.html",
            status_code=200 if report.applied else 422,
            report=report,
            records=_records(report),
            file_name=upload.filename if isinstance(upload, UploadFile) else "",
            format=words.FORMATS[report.format],
        )

    @get("/{service_id:str}", opt=READ)
    async def service(
        self,
        request: Request[Any, Any, Any],
        service_id: ServiceId,
        directory: NamedDependency[Directory],
    ) -> Template:
        entry, figures = await directory.read_with_figures(service_id)
        query = request.query_params
        return page(
            request,
            "directory/service.html",
            service=entry,
            figures=figures,
            capacity=CAPACITY_WORDS[entry.capacity_status] if entry.capacity_status else None,
            min_answered=MIN_ANSWERED,
            saved=query.get("saved") == "1",
            added=query.get("added") == "1",
            can_write=_can_write(request),
            **_options(),
        )

    @get("/{service_id:str}/edit", opt=WRITE)
    async def edit(
        self,
        request: Request[Any, Any, Any],
        service_id: ServiceId,
        directory: NamedDependency[Directory],
    ) -> Template:
        entry = await directory.read(service_id)
        return _form_page(request, service_values(entry), {}, entry)

    @post("/{service_id:str}", opt=WRITE)
    async def replace(
        self,
        request: Request[Any, Any, Any],
        service_id: ServiceId,
        directory: NamedDependency[Directory],
    ) -> Template | Redirect:
        entry = await directory.read(service_id)  # another clinic's is 404 before any check
        sent = read_service(Params(await request.form()))
        if sent.details is None:
            return _form_page(request, sent.values, sent.errors, entry)
        await directory.replace(service_id, sent.details)
        return see_other(f"/app/directory/{service_id}?saved=1")
