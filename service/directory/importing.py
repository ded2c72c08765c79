"""Directory import: an HSDS 3.0 file or a FHIR Bundle, shared by the API and the CLI.

Records are matched by their source ids, so importing a file again updates rather than
duplicates. By default a file with any rejected record changes nothing (the report names
every rejected record and why); ``skip-record`` applies the good records and reports the
rest. Either way the records applied are written in one transaction
(:func:`import_directory`, the use case the API's import and ``belong directory import``
share).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from service.directory import hsds
from service.directory.fhir import healthcare_service_details, healthcare_services
from service.directory.model import ServiceDetails
from service.directory.repository import DirectoryStore
from service.platform.database import Database, new_id, utcnow


class OnError(StrEnum):
    REJECT_FILE = "reject-file"
    SKIP_RECORD = "skip-record"


class RejectedRecord(msgspec.Struct):
    index: int
    """Position in the file: the service's index (HSDS) or the Bundle entry's (FHIR)."""
    source_id: str | None
    reasons: list[str]


class ImportedRecord(msgspec.Struct):
    index: int
    """Position in the file, as for a rejected record."""
    source_id: str
    name: str
    created: bool
    """True when the record added a service, False when it updated one."""


class ImportReport(msgspec.Struct):
    format: str
    applied: bool
    created: int
    updated: int
    rejected: list[RejectedRecord]
    imported: list[ImportedRecord] = []
    """Each record applied, in the file's order."""


class ImportFileError(ValueError):
    """The file as a whole cannot be read (the caller answers 400)."""


@dataclass(frozen=True, slots=True)
class ParsedFile:
    format: str
    source_system: str
    records: list[hsds.Parsed | hsds.Rejected]


def parse_file(raw: Any) -> ParsedFile:
    """What a file holds, record by record. Only validated directory fields are stored, and
    their text refuses NUL (which PostgreSQL cannot hold): such a record is rejected."""
    if isinstance(raw, list):
        return ParsedFile("hsds", "hsds", hsds.parse(raw))
    if isinstance(raw, dict) and isinstance(raw.get("contents"), list):
        return ParsedFile("hsds", "hsds", hsds.parse(raw["contents"]))
    if (
        isinstance(raw, dict)
        and raw.get("resourceType") == "Bundle"
        and isinstance(raw.get("entry"), list)
    ):
        return ParsedFile("fhir", "fhir", _parse_bundle(raw))
    raise ImportFileError(
        "expected an HSDS 3.0 list of services (or a page with 'contents'), "
        "or a FHIR Bundle (with an entry list) of HealthcareService"
    )


def _parse_bundle(bundle: dict[str, Any]) -> list[hsds.Parsed | hsds.Rejected]:
    results: list[hsds.Parsed | hsds.Rejected] = []
    seen: set[str] = set()
    for index, resource in healthcare_services(bundle):
        if resource is None:
            results.append(hsds.Rejected(index, None, ("not a Bundle entry object",)))
            continue
        source_id = resource.get("id")
        if (
            not isinstance(source_id, str)
            or not 0 < len(source_id) <= 255
            or not (source_id.isprintable())
        ):
            results.append(hsds.Rejected(index, None, ("HealthcareService.id is required",)))
            continue
        if source_id in seen:
            results.append(hsds.Rejected(index, source_id, ("id appears more than once",)))
            continue
        seen.add(source_id)
        try:
            parsed = msgspec.convert(healthcare_service_details(resource, bundle), ServiceDetails)
        except msgspec.ValidationError as exc:
            results.append(hsds.Rejected(index, source_id, (str(exc),)))
            continue
        problems = tuple(f"{field}: {message}" for field, message in parsed.problems())
        if problems:
            results.append(hsds.Rejected(index, source_id, problems))
        else:
            results.append(hsds.Parsed(index, source_id, parsed))
    return results


async def import_directory(
    db: Database,
    clinic_id: uuid.UUID,
    parsed: ParsedFile,
    on_error: OnError,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Apply a parsed file to the clinic's directory, in one transaction."""
    rejected = [
        RejectedRecord(r.index, r.source_id, list(r.reasons))
        for r in parsed.records
        if isinstance(r, hsds.Rejected)
    ]
    good = [r for r in parsed.records if isinstance(r, hsds.Parsed)]
    if rejected and on_error is OnError.REJECT_FILE:
        return ImportReport(parsed.format, False, 0, 0, rejected)
    imported = []
    # In one order (by source id), so that concurrent imports sharing records wait on
    # each other's rows rather than deadlock.
    good.sort(key=lambda record: record.source_id)
    now = utcnow()
    async with db.begin() as conn:
        store = DirectoryStore(conn, clinic_id)
        for done, record in enumerate(good, start=1):
            is_new = await store.save_service(
                str(new_id()),
                parsed.source_system,
                record.source_id,
                msgspec.to_builtins(record.details),
                now,
            )
            imported.append(
                ImportedRecord(record.index, record.source_id, record.details.name, is_new)
            )
            if progress is not None:
                progress(done, len(good))
    imported.sort(key=lambda record: record.index)
    created = sum(record.created for record in imported)
    return ImportReport(parsed.format, True, created, len(imported) - created, rejected, imported)
