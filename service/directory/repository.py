"""The directory's queries: a clinic's services, written by the API and by imports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from service.directory.model import Capacity, ResponseFigures
from service.matching.model import EARTH_RADIUS_KM
from service.platform.database import utcnow
from service.platform.tables import directory_services, referral_events, referrals
from service.platform.tenancy import ClinicScoped


@dataclass(frozen=True, slots=True)
class ServiceQuery:
    name: str | None = None
    """Text the service's name contains, in any case."""
    category: str | None = None
    condition: str | None = None
    language: str | None = None
    modality: str | None = None
    accepting: bool | None = None
    bounds: Sequence[tuple[float, float, float, float]] = ()
    """(min lat, max lat, min lon, max lon) boxes around a ``near`` search; any may hold."""


BY_NAME = (directory_services.c.name, directory_services.c.id)


class DirectoryStore(ClinicScoped):
    async def save_service(
        self,
        service_id: str,
        source_system: str,
        source_id: str,
        details: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Insert, or update by (source system, source id); True when new.

        One upsert, so that concurrent imports of one record neither fail on the unique
        source nor write it twice: the later waits for the earlier and updates its row."""
        columns = _service_columns(details)
        statement = self._insert(directory_services).values(
            self._row(
                id=service_id,
                source_system=source_system,
                source_id=source_id,
                details=details,
                created_at=now,
                updated_at=now,
                deleted_at=None,
                **columns,
            )
        )
        changed = ("details", *columns)
        statement = statement.on_conflict_do_update(
            index_elements=[
                directory_services.c.clinic_id,
                directory_services.c.source_system,
                directory_services.c.source_id,
            ],
            set_={
                **{name: statement.excluded[name] for name in changed},
                "updated_at": now,
                "deleted_at": None,
            },
        ).returning(directory_services.c.id)
        stored = (await self.conn.execute(statement)).scalar_one()
        return bool(stored == service_id)

    async def get_service(self, service_id: str) -> Row[Any] | None:
        """A live service (not withdrawn from the directory)."""
        query = self._select(directory_services).where(
            directory_services.c.id == service_id, directory_services.c.deleted_at.is_(None)
        )
        return (await self.conn.execute(query)).first()

    async def directory_stamp(self) -> tuple[int, datetime | None, datetime | None]:
        """Changes whenever the directory does: (rows, newest update, newest capacity a
        service said)."""
        c = directory_services.c
        query = self._select(
            directory_services,
            sa.func.count(),
            sa.func.max(c.updated_at),
            sa.func.max(c.capacity_at),
        )
        count, newest, said = (await self.conn.execute(query)).one()
        return count, newest, said

    async def set_capacity(self, service_id: str, capacity: Capacity) -> bool:
        """What the live service says of its intake, now; False when there is no such
        service."""
        result = await self.conn.execute(
            sa.update(directory_services)
            .where(
                self._scoped(directory_services),
                directory_services.c.id == service_id,
                directory_services.c.deleted_at.is_(None),
            )
            .values(capacity=capacity.value, capacity_at=utcnow())
        )
        return bool(result.rowcount)

    async def response_figures(
        self, service_ids: Sequence[str] | None = None
    ) -> dict[str, ResponseFigures]:
        """Per service (those named, else every one with an answered referral): how it
        answered the clinic's referrals, as :class:`ResponseFigures` defines it. An answer is
        a referral's step out of requested into accepted or rejected; the time to accept is
        from the referral's request to that step."""
        r, e = referrals.c, referral_events.c
        accepted = e.to_status == "accepted"
        waited = sa.extract("epoch", e.recorded_at - r.created_at)
        query = (
            sa.select(
                r.service_id,
                sa.func.count(),
                sa.func.count().filter(accepted),
                sa.func.percentile_cont(0.5).within_group(waited).filter(accepted),
            )
            .select_from(
                referrals.join(
                    referral_events, sa.and_(e.clinic_id == r.clinic_id, e.referral_id == r.id)
                )
            )
            .where(
                self._scoped(referrals),
                e.from_status == "requested",
                e.to_status.in_(("accepted", "rejected")),
            )
            .group_by(r.service_id)
        )
        if service_ids is not None:
            query = query.where(r.service_id.in_(service_ids))
        return {
            row[0]: ResponseFigures(row[1], row[2], float(row[3]) if row[3] is not None else None)
            for row in (await self.conn.execute(query)).all()
        }

    async def live_services(self) -> list[Row[Any]]:
        query = self._select(directory_services).where(directory_services.c.deleted_at.is_(None))
        return list((await self.conn.execute(query.order_by(directory_services.c.id))).all())

    async def replace_service(
        self, service_id: str, details: dict[str, Any], now: datetime
    ) -> bool:
        result = await self.conn.execute(
            sa.update(directory_services)
            .where(
                self._scoped(directory_services),
                directory_services.c.id == service_id,
                directory_services.c.deleted_at.is_(None),
            )
            .values(details=details, updated_at=now, **_service_columns(details))
        )
        return bool(result.rowcount)

    async def delete_service(self, service_id: str, now: datetime) -> bool:
        """Withdraw a service; referrals already made keep pointing at it."""
        result = await self.conn.execute(
            sa.update(directory_services)
            .where(
                self._scoped(directory_services),
                directory_services.c.id == service_id,
                directory_services.c.deleted_at.is_(None),
            )
            .values(deleted_at=now, updated_at=now)
        )
        return bool(result.rowcount)

    async def search_services(self, q: ServiceQuery) -> list[Row[Any]]:
        """Every service ``q`` finds, by name."""
        query = self._select(directory_services).where(*self._filters(q))
        return list((await self.conn.execute(query.order_by(*BY_NAME))).all())

    async def search_page(
        self, q: ServiceQuery, limit: int, offset: int
    ) -> tuple[list[Row[Any]], int]:
        """One page of the services ``q`` finds, by name, and how many it finds in all."""
        c = directory_services.c
        filters = self._filters(q)
        # The page's ids first, from the name index; then only their entries.
        page = (
            self._select(directory_services, c.id, c.name)
            .where(*filters)
            .order_by(*BY_NAME)
            .limit(limit)
            .offset(offset)
            .subquery()
        )
        query = (
            sa.select(directory_services)
            .join(page, page.c.id == c.id)
            .order_by(page.c.name, page.c.id)
        )
        rows = list((await self.conn.execute(query)).all())
        if len(rows) < limit and (rows or offset == 0):
            return rows, offset + len(rows)  # the last page: no need to count
        total = self._select(directory_services, sa.func.count()).where(*filters)
        return rows, (await self.conn.execute(total)).scalar_one()

    async def search_near(
        self,
        q: ServiceQuery,
        point: tuple[float, float],
        radius_km: float,
        limit: int,
        offset: int,
    ) -> tuple[list[Row[Any]], int]:
        """One page of the services ``q`` finds within ``radius_km`` of ``point`` (lat, lon
        in degrees; ``q.bounds`` should hold the circle), nearest first, each with its
        ``distance_km``, and how many there are in all."""
        c = directory_services.c
        measured = (
            self._select(directory_services, c.id, c.name, _distance_km(point))
            .where(*self._filters(q))
            .subquery()
        )
        near = measured.c.distance_km <= radius_km
        nearest = (measured.c.distance_km, measured.c.name, measured.c.id)
        # The page's ids first, from narrow rows; then only their entries.
        page = (
            sa.select(measured, sa.func.count().over().label("total"))
            .where(near)
            .order_by(*nearest)
            .limit(limit)
            .offset(offset)
            .subquery()
        )
        query = (
            sa.select(directory_services, page.c.distance_km, page.c.total)
            .join(page, page.c.id == c.id)
            .order_by(page.c.distance_km, page.c.name, page.c.id)
        )
        rows = list((await self.conn.execute(query)).all())
        if rows:
            return rows, rows[0].total
        total = sa.select(sa.func.count()).select_from(measured).where(near)
        return rows, (await self.conn.execute(total)).scalar_one()

    def _filters(self, q: ServiceQuery) -> list[Any]:
        c = directory_services.c
        filters: list[Any] = [c.deleted_at.is_(None)]
        if q.name is not None:
            filters.append(c.name.icontains(q.name, autoescape=True))
        if q.category is not None:
            filters.append(c.category == q.category)
        if q.condition is not None:
            filters.append(
                sa.or_(sa.func.cardinality(c.conditions) == 0, c.conditions.contains([q.condition]))
            )
        if q.language is not None:
            filters.append(c.languages.contains([q.language]))
        if q.modality is not None:
            filters.append(c.modalities.contains([q.modality]))
        if q.accepting is not None:
            filters.append(c.accepting.is_(q.accepting))
        if q.bounds:
            filters.append(
                sa.or_(
                    *(
                        sa.and_(
                            c.latitude.between(low_lat, high_lat),
                            c.longitude.between(low_lon, high_lon),
                        )
                        for low_lat, high_lat, low_lon, high_lon in q.bounds
                    )
                )
            )
        return filters


def _distance_km(point: tuple[float, float]) -> Any:
    """The great-circle distance from ``point`` (degrees) to a service's location: the
    haversine of :func:`service.matching.model.distance_km`, term by term, in SQL."""
    c = directory_services.c
    lat1, lon1 = (math.radians(value) for value in point)
    lat2, lon2 = sa.func.radians(c.latitude), sa.func.radians(c.longitude)
    h = sa.func.power(sa.func.sin((lat2 - lat1) / 2), 2) + sa.func.cos(lat1) * sa.func.cos(
        lat2
    ) * sa.func.power(sa.func.sin((lon2 - lon1) / 2), 2)
    distance = 2 * EARTH_RADIUS_KM * sa.func.asin(sa.func.least(1.0, sa.func.sqrt(h)))
    return distance.label("distance_km")


def _service_columns(details: dict[str, Any]) -> dict[str, Any]:
    location = details.get("location") or {}
    languages = sorted({tag.split("-", 1)[0].lower() for tag in details.get("languages", [])})
    return {
        "name": details["name"],
        "category": details["category"],
        "accepting": bool(details.get("accepting_referrals", True))
        and details.get("capacity") != 0,
        "conditions": list(details.get("conditions", [])),
        "modalities": list(details.get("modalities", [])),
        "languages": languages,
        "latitude": location.get("lat"),
        "longitude": location.get("lon"),
    }
