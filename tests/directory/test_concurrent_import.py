"""Imports of one new file at the same time: each answers, none duplicates a record.

Six ``POST /v1/directory/import`` of the seed file into an empty directory run side by side
on the app's own event loop, the file as it is or every other one with its records in the
opposite order. Every one answers 200 (a record another import created first is updated,
and imports sharing records do not deadlock), every record is created exactly once, and the
directory holds each record once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.platform.tables import directory_services
from tests.conftest import Clinic
from tests.helpers import Storage

SEED = Path(__file__).resolve().parents[2] / "deploy" / "seed" / "directory.hsds.json"
IMPORTS = 6


@pytest.mark.parametrize("reversed_every_other", [False, True], ids=["same-order", "both-orders"])
def test_concurrent_imports_of_one_new_file_create_each_record_once(
    session_client: TestClient[Litestar],
    clinic: Clinic,
    storage: Storage,
    reversed_every_other: bool,
) -> None:
    records = json.loads(SEED.read_bytes())
    files = [
        json.dumps(records[::-1] if reversed_every_other and n % 2 else records).encode()
        for n in range(IMPORTS)
    ]
    headers = {**clinic.headers, "Content-Type": "application/json"}

    async def imports() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=session_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await asyncio.gather(
                *(
                    http.post("/v1/directory/import", content=file, headers=headers)
                    for file in files
                )
            )

    responses = session_client.blocking_portal.call(imports)

    assert [r.status_code for r in responses] == [200] * IMPORTS, [r.text for r in responses]
    reports = [r.json() for r in responses]
    assert sum(report["created"] for report in reports) == len(records)
    assert all(report["created"] + report["updated"] == len(records) for report in reports)

    async def stored(conn: Any) -> list[tuple[str, int]]:
        query = (
            sa.select(directory_services.c.source_id, sa.func.count())
            .where(directory_services.c.clinic_id == clinic.clinic_id)
            .group_by(directory_services.c.source_id)
        )
        return [(row[0], row[1]) for row in (await conn.execute(query)).all()]

    rows = storage.run(stored)
    assert len(rows) == len(records)
    assert all(count == 1 for _, count in rows)
