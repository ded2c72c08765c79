"""The lean limit of a screening for the load benchmark: a screening's work on a bare app.

One POST endpoint, ``/v1/screenings``, takes the body Belong's does and does a screening's
work by calling the functions Belong's controller calls: decode and validate the body,
score it with the catalog (``screening_submission``), read the Idempotency-Key
(``key_use``), and record it (``record_submission``: read the patient's context with the
key, match against the directory cache with ``screening_recommendations``, build the FHIR
resources, encode the answer with ``render_screening``, and store it all with the key
holding that answer in the one write statement). What Belong adds around the work is left
out: its middleware (body and time limits, request context, metrics), the token check, the
audit event (the write's audit row is not written), the rate limit, dependency injection
and error rendering. A held key answers 409 (the benchmark sends a fresh key with every
request, so it never does).

It is served exactly as ``belong serve`` serves Belong (granian, same arguments), with
Belong's settings from the environment (``BELONG_DATABASE_URL``, the pool) and one clinic
(``LEAN_CLINIC``, by name) whose directory it matches against:

    BELONG_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/belong_bench \\
    LEAN_CLINIC="Bench Clinic" \\
        .venv/bin/python tests/perf/lean_screening_app.py --host 127.0.0.1 --port 8200

tests/screenings/test_lean_screening_app.py holds its answer to Belong's for the same input.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# This checkout's service package, in granian's workers too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State

from service.directory.service import DirectoryCache
from service.instruments.loader import load_catalog
from service.instruments.service import Catalog
from service.matching.service import Recommendations
from service.platform.body import decode
from service.platform.clinics import clinic_id_named
from service.platform.database import Database, new_id, utcnow
from service.screenings.controllers.answering import (
    ScreeningRequest,
    key_use,
    screening_submission,
)
from service.screenings.controllers.v1 import SCREENING_ROUTE, render_screening
from service.screenings.records import PatientContext
from service.screenings.service import (
    CREATED,
    Stored,
    record_submission,
    screening_recommendations,
)
from service.settings import Settings

MEDIA_TYPE = "application/json"


@post("/v1/screenings", status_code=201)
async def create_screening(request: Request[Any, Any, State]) -> Response[bytes]:
    state = request.app.state
    catalog: Catalog = state.catalog
    db: Database = state.db
    data = await decode(request, ScreeningRequest)
    screening_id = str(new_id())
    now = utcnow()
    submission = screening_submission(data, catalog, screening_id, now)
    key = await key_use(request, SCREENING_ROUTE)

    async def recommendations(context: PatientContext) -> Recommendations:
        return await screening_recommendations(
            db, state.clinic_id, state.directory_cache, catalog, context, submission, data.profile
        )

    outcome = await record_submission(
        db, state.clinic_id, submission, now, key, render_screening, None, recommendations
    )
    if not isinstance(outcome, Stored):
        return Response(b'{"detail":"key held"}', status_code=409, media_type=MEDIA_TYPE)
    return Response(
        outcome.body, status_code=CREATED, media_type=MEDIA_TYPE, headers=outcome.headers
    )


@get("/health/ready")
async def ready(state: State) -> dict[str, str]:
    await state.db.ping()
    return {"status": "ok"}


def create_app(settings: Settings | None = None, clinic: str | None = None) -> Litestar:
    """The lean app on Belong's settings (from the environment by default), for ``clinic``
    (by name; ``LEAN_CLINIC`` by default)."""
    settings = settings or Settings.from_env()
    clinic_name = clinic or os.environ["LEAN_CLINIC"]
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    catalog = Catalog.of(
        load_catalog(Path(settings.instruments_dir), settings.fhir_canonical_base),
        settings.licensed_instruments,
    )

    async def find_clinic(app: Litestar) -> None:
        async with db.begin() as conn:
            app.state.clinic_id = await clinic_id_named(conn, clinic_name)

    return Litestar(
        route_handlers=[create_screening, ready],
        on_startup=[find_clinic],
        on_shutdown=[db.dispose],
        state=State({"catalog": catalog, "db": db, "directory_cache": DirectoryCache()}),
        logging_config=None,
        openapi_config=None,
    )


def main() -> int:
    from serve_app import serve  # beside this file, which runs as a script

    return serve("lean_screening_app", __doc__.splitlines()[0], default_port=8200)


if __name__ == "__main__":
    raise SystemExit(main())
