"""The ceiling for the load benchmark: a bare Litestar app that inserts one row per request.

No authentication, audit, idempotency or ORM: one POST endpoint that decodes a small JSON
body (msgspec, as Litestar does by default), inserts one row with an asyncpg pool and
answers 201 with JSON. It is served exactly as ``belong serve`` serves Belong (granian,
ASGI interface, same worker count and defaults), so Belong's figures divided by these are
what Belong's own work costs on top of "HTTP + one INSERT" on this machine.

    CEILING_DSN=postgresql://postgres@127.0.0.1:5432/belong_bench \\
        .venv/bin/python tests/perf/ceiling_app.py --host 127.0.0.1 --port 8100 --workers 2

The table is created by bench_load.py (``ceiling_rows``); see TABLE_SQL.
"""

from __future__ import annotations

import os
import uuid
from typing import Annotated

import asyncpg
import msgspec
from litestar import Litestar, get, post
from litestar.datastructures import State

POOL_MAX = int(os.environ.get("CEILING_POOL_MAX", "6"))
"""Connections per worker: bench_load.py sets Belong's pool size (default 6, no overflow)."""

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS ceiling_rows (
    id uuid PRIMARY KEY,
    patient_id text NOT NULL,
    value integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT_SQL = "INSERT INTO ceiling_rows (id, patient_id, value) VALUES ($1, $2, $3)"


class RowIn(msgspec.Struct, forbid_unknown_fields=True):
    patient_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
    value: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


class RowOut(msgspec.Struct):
    id: str
    patient_id: str
    value: int


@post("/rows", status_code=201)
async def insert_row(data: RowIn, state: State) -> RowOut:
    row_id = uuid.uuid4()
    await state.pool.execute(INSERT_SQL, row_id, data.patient_id, data.value)
    return RowOut(id=str(row_id), patient_id=data.patient_id, value=data.value)


@get("/health/ready")
async def ready(state: State) -> dict[str, str]:
    await state.pool.fetchval("SELECT 1")
    return {"status": "ok"}


def create_app() -> Litestar:
    dsn = os.environ["CEILING_DSN"]

    async def open_pool(app: Litestar) -> None:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_MAX)

    async def close_pool(app: Litestar) -> None:
        await app.state.pool.close()

    return Litestar(
        route_handlers=[insert_row, ready],
        on_startup=[open_pool],
        on_shutdown=[close_pool],
        logging_config=None,
        openapi_config=None,
    )


def main() -> int:
    from serve_app import serve  # beside this file, which runs as a script

    return serve("ceiling_app", __doc__.splitlines()[0], default_port=8100)


if __name__ == "__main__":
    raise SystemExit(main())
