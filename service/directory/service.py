"""The directory's use cases: a clinic's services searched, written and imported, and the
match candidates matching reads (:class:`DirectoryCache`).

Each use case runs in one transaction; a write makes this worker's cache rebuild the
clinic's candidates on next use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from service.directory.importing import ImportReport, OnError, ParsedFile, import_directory
from service.directory.model import (
    NO_FIGURES,
    Capacity,
    DirectoryService,
    ResponseFigures,
    ServiceDetails,
    stored_service,
)
from service.directory.repository import DirectoryStore, ServiceQuery
from service.matching.model import EARTH_RADIUS_KM, Prepared, prepare
from service.platform.caller import Caller
from service.platform.clinics import clinic_languages
from service.platform.database import Database, new_id, utcnow
from service.platform.lookup import NotFound, found


class ServiceEntry(ServiceDetails, frozen=True, kw_only=True):
    id: str
    source_system: str
    """api, hsds or fhir: where the entry came from."""
    source_id: str
    created_at: datetime
    updated_at: datetime
    distance_km: float | None = None
    """From the ``near`` point, when searching by distance."""
    capacity_status: Capacity | None = None
    """What the service last said of its intake through its inbox (None: nothing yet)."""
    capacity_status_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """A live service as the FHIR facade publishes it."""

    service: DirectoryService
    updated_at: datetime


def _entry(row: Any, distance: float | None = None) -> ServiceEntry:
    return msgspec.convert(
        {
            **row.details,
            "id": row.id,
            "source_system": row.source_system,
            "source_id": row.source_id,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "distance_km": round(distance, 2) if distance is not None else None,
            "capacity_status": row.capacity,
            "capacity_status_at": row.capacity_at,
        },
        ServiceEntry,
    )


def _listing(row: Any) -> Listing:
    return Listing(
        stored_service(row.id, row.details, row.capacity, row.capacity_at), row.updated_at
    )


def bounds(lat: float, lon: float, radius_km: float) -> list[tuple[float, float, float, float]]:
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


class Directory:
    """A clinic's directory of support services."""

    def __init__(self, caller: Caller, directory_cache: DirectoryCache) -> None:
        self.caller = caller
        self.cache = directory_cache

    async def search(
        self,
        query: ServiceQuery,
        near: tuple[float, float] | None,
        radius_km: float,
        limit: int,
        offset: int,
    ) -> tuple[list[ServiceEntry], int]:
        """One page of the services ``query`` finds (within ``radius_km`` of ``near``,
        nearest first, when given) and how many it finds in all."""
        if near is not None:
            query = dataclasses.replace(query, bounds=bounds(*near, radius_km))
        async with self.caller.transaction(DirectoryStore) as store:
            if near is None:
                rows, total = await store.search_page(query, limit, offset)
            else:
                rows, total = await store.search_near(query, near, radius_km, limit, offset)
        return [_entry(row, row.distance_km if near else None) for row in rows], total

    async def create(self, details: ServiceDetails) -> ServiceEntry:
        service_id = str(new_id())
        async with self.caller.transaction(DirectoryStore) as store:
            await store.save_service(
                service_id, "api", service_id, msgspec.to_builtins(details), utcnow()
            )
            row = await store.get_service(service_id)
        self.cache.forget(self.caller.clinic_id)
        return _entry(row)

    async def read(self, service_id: str) -> ServiceEntry:
        async with self.caller.transaction(DirectoryStore) as store:
            row = await store.get_service(service_id)
        return _entry(found(row, "service", service_id))

    async def read_with_figures(self, service_id: str) -> tuple[ServiceEntry, ResponseFigures]:
        """The service, and how it has answered the clinic's referrals."""
        async with self.caller.transaction(DirectoryStore) as store:
            row = found(await store.get_service(service_id), "service", service_id)
            figures = await store.response_figures([service_id])
        return _entry(row), figures.get(service_id, NO_FIGURES)

    async def set_capacity(self, service_id: str, capacity: Capacity) -> None:
        """Record what the service says of its intake (its inbox's form); matching reads
        it at once in this worker, and within the cache's recheck in the others."""
        async with self.caller.transaction(DirectoryStore) as store:
            if not await store.set_capacity(service_id, capacity):
                raise NotFound("service", service_id)
        self.cache.forget(self.caller.clinic_id)

    async def replace(self, service_id: str, details: ServiceDetails) -> ServiceEntry:
        async with self.caller.transaction(DirectoryStore) as store:
            if not await store.replace_service(service_id, msgspec.to_builtins(details), utcnow()):
                raise NotFound("service", service_id)
            row = await store.get_service(service_id)
        self.cache.forget(self.caller.clinic_id)
        return _entry(row)

    async def remove(self, service_id: str) -> None:
        """Withdraw a service (referrals already made keep their record of it)."""
        async with self.caller.transaction(DirectoryStore) as store:
            if not await store.delete_service(service_id, utcnow()):
                raise NotFound("service", service_id)
        self.cache.forget(self.caller.clinic_id)

    async def import_file(self, parsed: ParsedFile, on_error: OnError) -> ImportReport:
        report = await import_directory(self.caller.db, self.caller.clinic_id, parsed, on_error)
        self.cache.forget(self.caller.clinic_id)
        return report

    async def listings(
        self, category: str | None, limit: int, after: tuple[str, str] | None = None
    ) -> tuple[list[Listing], int]:
        """Up to ``limit`` live services (of ``category`` when given) by name and id, those
        after the (name, id) ``after`` when given, and how many there are in all."""
        async with self.caller.transaction(DirectoryStore) as store:
            rows = await store.search_services(ServiceQuery(category=category))
        following = [row for row in rows if after is None or (row.name, row.id) > after]
        return [_listing(row) for row in following[:limit]], len(rows)

    async def listing(self, service_id: str, kind: str) -> Listing:
        """One live service; :class:`NotFound` names it ``kind``, as the caller does."""
        async with self.caller.transaction(DirectoryStore) as store:
            row = await store.get_service(service_id)
        return _listing(found(row, kind, service_id))


FIGURES_RECHECK_S = 60.0
"""How long a worker keeps a clinic's acceptance figures (a scan of its referrals' answers)
before reading them again; a directory change this worker made reads them at once."""


@dataclass(frozen=True, slots=True)
class ClinicDirectory:
    candidates: Prepared
    languages: tuple[str, ...]
    """The clinic's languages: matching's for a patient whose profile records none."""
    figures: dict[str, ResponseFigures] = dataclasses.field(default_factory=dict)
    """How each service answered the clinic's referrals, as read at ``figures_at``."""
    figures_at: float = 0.0
    """time.monotonic() when the figures were read."""

    def figures_of(self, service_id: str) -> ResponseFigures:
        return self.figures.get(service_id, NO_FIGURES)


class DirectoryCache:
    """Match candidates (and the clinic's languages) per clinic, rebuilt when the directory
    changes. Whether it changed is asked of the database at most every ``recheck_s`` seconds
    per worker, so a directory edit, or new clinic languages, reach recommendations within
    that time. One per worker (the app's state), read on every screening's answer: a fresh
    entry costs no round trip."""

    def __init__(self, recheck_s: float = 5.0) -> None:
        self.recheck_s = recheck_s
        self._entries: dict[
            uuid.UUID, tuple[tuple[int, datetime | None, datetime | None], float, ClinicDirectory]
        ] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}

    def forget(self, clinic_id: uuid.UUID) -> None:
        """After this worker changed the clinic's directory: rebuild on next use."""
        self._entries.pop(clinic_id, None)

    async def directory(self, db: Database, clinic_id: uuid.UUID) -> ClinicDirectory:
        held = self._entries.get(clinic_id)
        if held is not None and time.monotonic() - held[1] < self.recheck_s:
            return held[2]
        # One rebuild per clinic at a time: the requests that arrive meanwhile wait for it
        # instead of each loading the whole directory.
        async with self._locks.setdefault(clinic_id, asyncio.Lock()):
            return await self._refresh(db, clinic_id)

    async def _refresh(self, db: Database, clinic_id: uuid.UUID) -> ClinicDirectory:
        held = self._entries.get(clinic_id)
        now = time.monotonic()
        if held is not None and now - held[1] < self.recheck_s:
            return held[2]  # refreshed while this request waited
        async with db.begin() as conn:
            store = DirectoryStore(conn, clinic_id)
            stamp = await store.directory_stamp()
            languages = await clinic_languages(conn, clinic_id)
            if held is not None and now - held[2].figures_at < FIGURES_RECHECK_S:
                figures, figures_at = held[2].figures, held[2].figures_at
            else:
                figures, figures_at = await store.response_figures(), now
            if held is not None and held[0] == stamp:
                directory = ClinicDirectory(held[2].candidates, languages, figures, figures_at)
                self._entries[clinic_id] = (stamp, now, directory)
                return directory
            rows = await store.live_services()
        candidates = prepare(
            stored_service(row.id, row.details, row.capacity, row.capacity_at) for row in rows
        )
        directory = ClinicDirectory(candidates, languages, figures, figures_at)
        self._entries[clinic_id] = (stamp, now, directory)
        # The candidates live until the directory changes: keep them (and everything else
        # alive now) out of the cyclic garbage collector's full passes, which otherwise walk
        # every one of their objects again and again (about 100 ms for 10,000 services).
        gc.freeze()
        return directory
