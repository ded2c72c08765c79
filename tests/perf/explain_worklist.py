"""The worklist's and the patient page's statements on a clinic of ~1,000 patients: their
query plans (EXPLAIN ANALYZE, BUFFERS) and the pages' times in process.

Seeds a fresh database through the real API (patients x screenings, a directory, referrals
in every status, some overdue), signs a clinician in, captures every statement one
``GET /app`` and one ``GET /app/patients/{id}`` run, explains each, then times both pages.

Run from the repository root (not collected by pytest); it drops and creates the database
named in the URL:

    .venv/bin/python tests/perf/explain_worklist.py \
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/belong_worklist_plan
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from service.app import create_app
from service.platform.clinics import create_clinic
from service.platform.credentials import SCOPES
from service.platform.migrate import upgrade
from service.platform.tables import referrals
from service.settings import Settings
from service.systems.repository import create_client
from tests.signed_in import sign_in

CLINIC = "plan-clinic"
NOW = datetime.now(UTC)


def recreate(url: str) -> None:
    database = sa.engine.make_url(url).database

    async def run() -> None:
        admin = create_async_engine(
            sa.engine.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
        )
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            await conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        await admin.dispose()

    asyncio.run(run())
    upgrade(url)


def vacuum(url: str) -> None:
    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(sa.text("VACUUM ANALYZE"))
        await engine.dispose()

    asyncio.run(run())


def instant(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(client: TestClient[Any], headers: dict[str, str], patients: int, per: int) -> None:
    rng = random.Random(16)
    services = []
    for i in range(20):
        body = {
            "name": f"Service {i}",
            "organization": "Plan Trust",
            "category": ["support-group", "social-activity", "counselling"][i % 3],
            "modalities": ["online", "phone"],
        }
        response = client.post("/v1/directory/services", json=body, headers=headers)
        assert response.status_code == 201, response.text
        services.append(response.json()["id"])
    started = time.perf_counter()
    for p in range(patients):
        patient = f"plan-{p:05d}"
        for s in range(per):
            days = rng.uniform(0, 400)
            if s % 2 == 0:
                value = rng.choice([1, 2, 3])
                body = {
                    "patient_id": patient,
                    "instrument": "ucla-3",
                    "completed_at": instant(days),
                    "answers": {"1": value, "2": value, "3": rng.choice([1, 3])},
                }
            else:
                value = rng.choice([0, 1, 2, 3, 4])
                body = {
                    "patient_id": patient,
                    "instrument": "lsns-6",
                    "completed_at": instant(days),
                    "answers": {str(i): value for i in range(1, 7)},
                }
            response = client.post("/v1/screenings", json=body, headers=headers)
            assert response.status_code == 201, response.text
        if p % 3 == 0:  # a third referred, in every status
            response = client.post(
                "/v1/referrals",
                json={
                    "patient_id": patient,
                    "service_id": rng.choice(services),
                    "consent": {"given": True, "method": "verbal"},
                },
                headers=headers,
            )
            assert response.status_code == 201, response.text
            referral = response.json()["id"]
            steps = rng.choice(
                [
                    [],
                    [{"status": "accepted"}],
                    [{"status": "accepted"}, {"status": "in-progress"}],
                    [{"status": "accepted"}, {"status": "in-progress"}, {"status": "completed"}],
                    [{"status": "rejected", "reason": "Full"}],
                    [{"status": "cancelled", "reason": "Moved"}],
                ]
            )
            for step in steps:
                moved = client.patch(f"/v1/referrals/{referral}", json=step, headers=headers)
                assert moved.status_code == 200, moved.text
            days = rng.uniform(0, 60)
            _execute(
                client,
                sa.update(referrals)
                .where(referrals.c.id == referral)
                .values(
                    created_at=NOW - timedelta(days=days),
                    updated_at=NOW - timedelta(days=days / 2),
                ),
            )
    print(f"seeded {patients} patients x {per} screenings in {time.perf_counter() - started:.0f} s")


def _execute(client: TestClient[Any], statement: sa.Executable) -> None:
    async def run() -> None:
        async with client.app.state.db.begin() as conn:
            await conn.execute(statement)

    client.blocking_portal.call(run)


def captured(client: TestClient[Any], get: Any, path: str) -> list[tuple[str, Any]]:
    """The statements SQLAlchemy sends while ``path`` is answered (the asyncpg fast paths
    are not seen here: they are compiled statements run on the driver)."""
    seen: list[tuple[str, Any]] = []
    engine = client.app.state.db.engine.sync_engine

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        assert get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    return seen


def explain(client: TestClient[Any], statements: list[tuple[str, Any]], words: tuple[str, ...]):
    async def run() -> None:
        async with client.app.state.db.begin() as conn:
            for statement, parameters in statements:
                if not any(w in statement for w in words):
                    continue
                print("-" * 100)
                print(statement)
                plan = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                )
                for (line,) in plan.all():
                    print(line)

    client.blocking_portal.call(run)


def timed(get: Any, path: str, runs: int) -> str:
    for _ in range(5):
        get(path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        assert get(path).status_code == 200
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    return (
        f"{path}: p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--screenings", type=int, default=5)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument(
        "--keep", action="store_true", help="explain and time a database seeded before"
    )
    args = parser.parse_args()
    if args.keep:
        upgrade(args.database_url)
    else:
        recreate(args.database_url)
    app = create_app(Settings(database_url=args.database_url, rate_limit_per_minute=0))
    with TestClient(app) as client:

        async def clinic() -> str:
            async with client.app.state.db.begin() as conn:
                if not args.keep:
                    await create_clinic(conn, CLINIC, ("en",))
                _, token = await create_client(conn, CLINIC, list(SCOPES))
            return token

        headers = {"Authorization": f"Bearer {client.blocking_portal.call(clinic)}"}
        patient = "plan-00001"
        if not args.keep:
            seed(client, headers, args.patients, args.screenings)
        vacuum(args.database_url)
        user = sign_in(client, CLINIC)
        for path in ("/app", "/app?sort=oldest&instrument=lsns-6&offset=50", "/app?overdue=1"):
            explain(client, captured(client, user.get, path), ("screenings", "referrals"))
        explain(
            client,
            captured(client, user.get, f"/app/patients/{patient}"),
            ("screenings", "referrals", "patients"),
        )
        for path in ("/app", "/app?sort=oldest&offset=100", f"/app/patients/{patient}"):
            print(timed(user.get, path, args.runs))


if __name__ == "__main__":
    main()
