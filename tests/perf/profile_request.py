"""CPU per request of one Belong route, in process, and where it goes (cProfile).

No server and no load generator: the ASGI app is called directly, one request after
another, against a database seeded by ``bench_load.py --keep-db``. The CPU time per request
is the app's alone (granian, wrk and PostgreSQL are not in it), so two versions of the code
can be compared on a busy machine more steadily than with the load benchmark.

    BELONG_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/belong_bench \\
    BELONG_TOKEN=$(.venv/bin/belong clients create --clinic "Bench Clinic" --name profile \\
        --scope screenings:read --scope screenings:write --scope referrals:read | tail -1) \\
    .venv/bin/python tests/perf/profile_request.py screening --requests 500

``page`` GETs clinician app pages (``--path``, repeatable, taken in turn) with a session
cookie (``--cookie NAME=VALUE``), or signed in as a user of a clinic (``--clinic`` and
``--user``: a sign-in link redeemed in-process); ``bench_app.py --profile PAGE`` runs it
on its own data, and on a database it kept (``bench_app.py --keep-db``):

    BELONG_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/belong_bench_app \
    .venv/bin/python tests/perf/profile_request.py page --clinic "Bench App Clinic" \
        --user "Bench Coordinator" --path /app/patients/bench-0001 --top 30

``--lean`` sends the same screenings to the lean limit (lean_screening_app.py, for the clinic
``LEAN_CLINIC``, "Bench Clinic" by default) instead: what Belong's machinery adds to a
screening is the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from service.app import create_app
from service.settings import Settings

Call = Callable[[], Awaitable[dict[str, Any]]]


async def asgi_call(
    app: Any, token: str, method: str, path: str, query: str = "", body: bytes = b"", **headers: str
) -> dict[str, Any]:
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = message.get("headers", [])
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"authorization", f"Bearer {token}".encode()),
            *((k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return answer


def requests_for(route: str, app: Any, token: str, args: argparse.Namespace) -> Call:
    rng = random.Random(3)
    patients = args.patients

    def patient() -> str:
        return f"bench-{rng.randrange(patients):04d}"  # as bench_load.py names them

    def screening() -> Awaitable[dict[str, Any]]:
        body = {
            "patient_id": patient(),
            "instrument": "ucla-3",
            "completed_at": "2026-01-01T10:00:00Z",
            "answers": {str(i): rng.randint(1, 3) for i in (1, 2, 3)},
        }
        return asgi_call(
            app,
            token,
            "POST",
            "/v1/screenings",
            body=json.dumps(body).encode(),
            content_type="application/json",
            idempotency_key=uuid.uuid4().hex,
        )

    routes: dict[str, Call] = {
        "screening": screening,
        "observations": lambda: asgi_call(
            app, token, "GET", "/fhir/Observation", f"patient={patient()}&_count=20"
        ),
        "referrals": lambda: asgi_call(app, token, "GET", f"/v1/patients/{patient()}/referrals"),
        "page": lambda: app_page(app, token, args),
    }
    return routes[route]


def app_page(app: Any, token: str, args: argparse.Namespace) -> Awaitable[dict[str, Any]]:
    """The next of the clinician app's pages in ``args.path``, with the session cookie."""
    args.turn = (getattr(args, "turn", -1) + 1) % len(args.path)
    path, _, query = args.path[args.turn].partition("?")
    return asgi_call(app, token, "GET", path, query, cookie=args.cookie)


def lean_app(settings: Settings) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lean_screening_app import create_app as create_lean_app

    return create_lean_app(settings, os.environ.get("LEAN_CLINIC", "Bench Clinic"))


async def run(args: argparse.Namespace) -> None:
    # As bench_load.py serves it: no rate limit (it would answer 429 within a minute).
    settings = msgspec.structs.replace(Settings.from_env(), rate_limit_per_minute=0)
    app = lean_app(settings) if args.lean else create_app(settings)
    async with app.lifespan():
        if args.route == "page" and not args.cookie:
            args.cookie = await signed_in(app, args.clinic, args.user)
        await measure(args, app)


async def signed_in(app: Any, clinic: str, user: str) -> str:
    """A session of ``user``, from a sign-in link redeemed in-process: its cookie."""
    from service.web.users import SIGN_IN_LINK_PATH, Users

    token = await Users(app.state.db).link(clinic, user)
    answer = await asgi_call(app, "", "GET", SIGN_IN_LINK_PATH + token)
    cookies = [v.decode() for k, v in answer.get("headers", []) if k == b"set-cookie"]
    if answer["status"] != 303 or not cookies:
        raise SystemExit(f"sign-in link: {answer['status']} {answer['body'][:300]!r}")
    return cookies[0].split(";", 1)[0]


async def measure(args: argparse.Namespace, app: Any) -> None:
    one = requests_for(args.route, app, os.environ.get("BELONG_TOKEN", ""), args)
    for _ in range(30):  # warm caches: tokens, the directory, prepared statements
        answer = await one()
    if answer.get("status") not in (200, 201):
        raise SystemExit(f"{args.route}: {answer.get('status')} {answer['body'][:300]!r}")
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.requests):
        await one()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{args.route}: {cpu / args.requests * 1000:.2f} ms CPU and "
        f"{wall / args.requests * 1000:.2f} ms wall per request ({args.requests} requests)"
    )
    if args.statements or args.explain:
        await statements(app, one, args.explain)
    if args.top:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.requests):
            await one()
        profile.disable()
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


async def statements(app: Any, one: Call, explain: bool) -> None:
    """The statements one request runs through SQLAlchemy, each with its time (those sent
    on the driver's own connection, as a screening's write, are not seen), and with
    ``explain`` the plan of each SELECT, run again under EXPLAIN ANALYZE."""
    from sqlalchemy import event

    engine = app.state.db.engine.sync_engine
    seen: list[tuple[str, Any, float]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        conn.info["started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters, (time.perf_counter() - conn.info["started"]) * 1000))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        await one()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    print(f"{len(seen)} statements through SQLAlchemy:")
    for number, (statement, parameters, ms) in enumerate(seen, 1):
        print(f"\n-- {number}: {ms:.2f} ms, parameters {parameters!r}\n{statement}")
        if explain and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            async with app.state.db.engine.connect() as conn:
                plan = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                )
                print("\n".join(f"   {row[0]}" for row in plan.all()))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("route", choices=["screening", "observations", "referrals", "page"])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--top", type=int, default=40, help="profile lines (0: no profile)")
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    parser.add_argument(
        "--lean", action="store_true", help="the screening on the lean limit instead of Belong"
    )
    parser.add_argument("--path", action="append", help="page: an /app path (repeatable)")
    parser.add_argument("--cookie", default="", help="page: the session cookie, NAME=VALUE")
    parser.add_argument(
        "--statements", action="store_true", help="list the statements of one request"
    )
    parser.add_argument(
        "--explain", action="store_true", help="and EXPLAIN ANALYZE each SELECT of them"
    )
    parser.add_argument("--clinic", help="page: sign in as --user of this clinic instead")
    parser.add_argument("--user", help="page: the user's name (see --clinic)")
    args = parser.parse_args()
    if args.route == "page" and not (args.path and (args.cookie or (args.clinic and args.user))):
        parser.error("page: --path, and --cookie or --clinic with --user, are needed")
    if args.lean and args.route != "screening":
        parser.error("--lean: the lean limit serves screenings only")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
