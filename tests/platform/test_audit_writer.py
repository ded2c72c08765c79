"""Read audits are group-committed: concurrent events share a batch, every one is stored
before its writer returns, and one bad event does not cost the others their record."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.platform.audit import AuditEvent
from service.platform.audit_writer import AuditWriter
from service.platform.database import new_id, utcnow
from service.platform.tables import audit_events
from tests.conftest import Clinic
from tests.helpers import Storage


def event(clinic: Clinic, storage: Storage, patient_id: str) -> AuditEvent:
    (client_id,) = storage.client_ids(clinic.clinic_id)
    return AuditEvent(
        client_id=client_id,
        action="search",
        resource_type="Observation",
        resource_id=None,
        patient_id=patient_id,
        status_code=200,
        at=utcnow(),
    )


def stored_patients(storage: Storage, clinic_id: uuid.UUID) -> list[str]:
    async def look(conn: Any) -> list[str]:
        query = sa.select(audit_events.c.patient_id).where(audit_events.c.clinic_id == clinic_id)
        return sorted((await conn.execute(query)).scalars())

    return storage.run(look)


class CountingWriter(AuditWriter):
    batches: list[int]

    async def _insert(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))
        await super()._insert(batch)


def test_concurrent_events_share_batches_and_are_all_stored(
    session_client: TestClient[Litestar], clinic: Clinic, storage: Storage
) -> None:
    writer = CountingWriter(session_client.app.state.db)
    writer.batches = []
    events = [event(clinic, storage, f"p-{n:02d}") for n in range(40)]

    async def write_all() -> None:
        await asyncio.gather(*(writer.write(clinic.clinic_id, e) for e in events))

    session_client.blocking_portal.call(write_all)
    assert stored_patients(storage, clinic.clinic_id) == [f"p-{n:02d}" for n in range(40)]
    assert sum(writer.batches) == 40
    assert len(writer.batches) < 40  # the first alone, the rest batched behind it


def test_an_event_is_committed_when_write_returns(
    session_client: TestClient[Litestar], clinic: Clinic, storage: Storage
) -> None:
    writer = AuditWriter(session_client.app.state.db)
    seen: list[list[str]] = []
    one = event(clinic, storage, "p-seen")

    async def write_then_look() -> None:
        await writer.write(clinic.clinic_id, one)
        async with session_client.app.state.db.begin() as conn:
            query = sa.select(audit_events.c.patient_id).where(
                audit_events.c.clinic_id == clinic.clinic_id
            )
            seen.append(list((await conn.execute(query)).scalars()))

    session_client.blocking_portal.call(write_then_look)
    assert seen == [["p-seen"]]


def test_a_bad_event_fails_alone(
    session_client: TestClient[Litestar], clinic: Clinic, storage: Storage
) -> None:
    writer = AuditWriter(session_client.app.state.db)
    good = [event(clinic, storage, f"p-{n}") for n in range(5)]
    bad = dataclasses.replace(good[0], id=new_id(), client_id=None)  # NOT NULL: fails

    async def write_all() -> list[BaseException | None]:
        results = await asyncio.gather(
            *(writer.write(clinic.clinic_id, e) for e in [*good[:2], bad, *good[2:]]),
            return_exceptions=True,
        )
        return list(results)

    results = session_client.blocking_portal.call(write_all)
    assert [r is None for r in results] == [True, True, False, True, True, True]
    assert isinstance(results[2], Exception)
    assert stored_patients(storage, clinic.clinic_id) == [f"p-{n}" for n in range(5)]


def test_concurrent_searches_each_leave_one_audit_event(
    session_client: TestClient[Litestar], clinic: Clinic, storage: Storage
) -> None:
    """Through the API: concurrent Observation searches, one audit event each."""
    patient_ids = [f"pat-{n:02d}" for n in range(30)]

    async def search_all() -> list[int]:
        # On the app's own loop, so the searches really are concurrent in one process.
        transport = httpx.ASGITransport(app=session_client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=clinic.headers
        ) as http:
            answers = await asyncio.gather(
                *(http.get("/fhir/Observation", params={"patient": p}) for p in patient_ids)
            )
        return [answer.status_code for answer in answers]

    assert session_client.blocking_portal.call(search_all) == [200] * 30
    assert stored_patients(storage, clinic.clinic_id) == patient_ids
