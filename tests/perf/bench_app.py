"""Clinician app benchmark: the server time of every /app page, against a realistic clinic.

    .venv/bin/python tests/perf/bench_app.py                   # 200 requests per page
    .venv/bin/python tests/perf/bench_app.py --requests 500 --keep-db
    .venv/bin/python tests/perf/bench_app.py --profile patient # also cProfile one page

What it does, all on loopback:

1. creates a fresh PostgreSQL database (``belong_bench_app``), runs ``belong db upgrade``,
   ``belong clinics create`` and ``belong clients create`` (a clinic token, every scope);
2. writes 10,000 Open Referral HSDS 3.0 services shaped like deploy/seed/directory.hsds.json
   (every category, one to three modalities, conditions, languages, locations around
   London) and imports them with ``belong directory import``;
3. starts ``belong serve --workers 1`` (granian, rate limit off) and seeds through the API,
   eight requests in flight: 1,000 patients, each a profile (``PUT /v1/patients/{id}``) and
   four to six screenings over the last year on one to three instruments, answers tilted
   towards either end so that some screenings are positive and some negative, some
   patients getting better and some worse; then referrals for 30% of them, moved through
   the state machine (``PATCH /v1/referrals/{id}``) to every status;
4. signs a coordinator in (``belong users add`` + ``belong users link``, the link redeemed
   over HTTP for the session cookie, sent by hand: it is Secure and this is plain http);
5. for each page: one probe (404 or 405 for its route: the page is "missing", not a
   failure) and a warm-up; then ``--requests`` sequential GETs per page on one keep-alive
   connection, over randomly chosen patients, referrals and services, taken in blocks of
   ``--block`` per page in turn (a busy moment of the shared machine falls on every page
   alike); the latency of each is recorded, a ``Server-Timing`` header's durations when
   the server sends one, and the CPU time the server's worker and the database's backends
   spent. Two floors are measured the same way: ``GET /health/live`` (the framework, this
   client and this machine) and one committed INSERT straight through asyncpg (the WAL
   flush every page that shows patient data waits for: its audit event);
6. prints one table (p50 / p95 / p99 / max in ms, CPU per request, and p95 against the
   50 ms target).

Exit status: 0 when every page that exists answers 200 with p95 under 50 ms, 1 when one
does not, 2 when the benchmark could not run. Progress goes to stderr, the table to stdout.

``--profile KEY`` (a page key from the table, e.g. ``patient``) then calls that page
in-process with cProfile, on the same data and session (tests/perf/profile_request.py
``page``), and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for path in (HERE, ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import bench_load as load  # tests/perf, beside this file: processes, database, data  # noqa: E402
from bench_load import BenchError, log  # noqa: E402

CLINIC = "Bench App Clinic"
USER = "Bench Coordinator"
TARGET_MS = 50.0
CONCURRENCY = 8
SESSION_COOKIE = "__Host-belong-session"

INSTRUMENTS = ("ucla-3", "ucla-20", "lsns-6", "peg", "mspss", "djg-6", "osss-3")
CATEGORIES = ("support-group", "social-activity", "counselling", "family-communication")
SERVICE_LANGUAGES = ["en"] * 10 + ["es", "es", "pl", "ur", "pa", "fr", "ar", "zh"]
REFERRAL_PATHS: dict[str, list[dict[str, str]]] = {
    # The steps from requested to each status, and how many referrals end there (weights).
    "requested": [],
    "accepted": [{"status": "accepted"}],
    "in-progress": [{"status": "accepted"}, {"status": "in-progress"}],
    "on-hold": [
        {"status": "accepted"},
        {"status": "in-progress"},
        {"status": "on-hold", "reason": "Patient in hospital for two weeks"},
    ],
    "completed": [
        {"status": "accepted"},
        {"status": "in-progress"},
        {"status": "completed", "outcome": "Attended 6 of 8 sessions"},
    ],
    "failed": [
        {"status": "accepted"},
        {"status": "in-progress"},
        {"status": "failed", "reason": "Could not be reached after three calls"},
    ],
    "rejected": [{"status": "rejected", "reason": "Group is full this term"}],
    "cancelled": [{"status": "cancelled", "reason": "Patient chose another service"}],
}
REFERRAL_WEIGHTS = {
    "requested": 30,
    "accepted": 15,
    "in-progress": 20,
    "on-hold": 5,
    "completed": 15,
    "failed": 5,
    "rejected": 5,
    "cancelled": 5,
}


# -- the directory ---------------------------------------------------------------------


def _terms() -> dict[str, dict[str, Any]]:
    """The belong taxonomy's terms as the seed file spells them, by code."""
    terms: dict[str, dict[str, Any]] = {}
    for service in json.loads(load.SEED_DIRECTORY.read_text(encoding="utf-8")):
        for attribute in service.get("attributes") or []:
            terms.setdefault(attribute["taxonomy_term"]["code"], attribute)
    return terms


def directory_services(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """bench_load's services (seed copies with new ids, moved locations, varied capacity,
    catchment and conditions), each also given a random category, modalities and
    languages: every filter of the directory page has something to find."""
    rng = random.Random(seed)
    terms = _terms()
    services = load.directory_services(count, seed)
    for service in services:
        located = any(
            (link.get("location") or {}).get("latitude") is not None
            for link in service.get("service_at_locations") or []
        )
        kinds = ["in-person", "online", "phone"] if located else ["online", "phone"]
        modalities = rng.sample(kinds, min(rng.choice([1, 1, 2, 2, 3]), len(kinds)))
        attributes = [
            a
            for a in service.get("attributes") or []
            if a["taxonomy_term"]["code"] not in ("category", "modality")
        ]
        for code, value in [("category", rng.choice(CATEGORIES))] + [
            ("modality", m) for m in modalities
        ]:
            attribute = copy.deepcopy(terms[code])
            attribute["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            attribute["link_id"] = service["id"]
            attribute["value"] = value
            attributes.append(attribute)
        service["attributes"] = attributes
        codes = {rng.choice(SERVICE_LANGUAGES) for _ in range(rng.choice([1, 1, 2, 3]))}
        if rng.random() < 0.8:
            codes.add("en")
        service["languages"] = [
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "service_id": service["id"],
                "code": code,
            }
            for code in sorted(codes)
        ]
    return services


# -- patients, screenings and referrals ------------------------------------------------


@dataclass
class AnswerSheet:
    """An instrument's items: the option values a patient may pick, ordered from the
    least to the most troubled answer."""

    items: dict[str, list[int]]

    def answers(self, rng: random.Random, severity: float) -> dict[str, int]:
        """Answers around ``severity`` (0: untroubled, 1: the worst answers)."""
        chosen = {}
        for link_id, values in self.items.items():
            where = min(max(severity + rng.gauss(0, 0.15), 0.0), 1.0)
            chosen[link_id] = values[round(where * (len(values) - 1))]
        return chosen


def answer_sheets() -> dict[str, AnswerSheet]:
    from service.instruments.loader import load_catalog
    from service.instruments.model import Direction

    catalog = load_catalog(load.INSTRUMENTS_DIR)
    sheets = {}
    for instrument_id in INSTRUMENTS:
        definition = catalog[instrument_id].definition
        items = {}
        for item in definition.items:
            values = sorted(o.value for o in definition.option_sets[item.options] if not o.declined)
            worse_is_higher = (definition.direction is Direction.HIGHER_WORSE) != item.reverse
            items[item.linkId] = values if worse_is_higher else values[::-1]
        sheets[instrument_id] = AnswerSheet(items)
    return sheets


@dataclass
class Plan:
    patient_id: str
    profile: dict[str, Any]
    screenings: list[dict[str, Any]]


def plans(patients: Sequence[str], seed: int = 11) -> list[Plan]:
    """For each patient: a profile, and four to six screenings over the last year on one to
    three instruments, their severity drifting from where it starts to where it ends."""
    rng = random.Random(seed)
    sheets = answer_sheets()
    now = datetime.now(UTC)
    found = []
    for patient_id in patients:
        instruments = rng.sample(INSTRUMENTS, rng.choice([1, 2, 2, 3]))
        start, end = rng.random(), rng.random()
        count = rng.choice([4, 5, 5, 6])
        days = sorted(rng.sample(range(1, 365), count), reverse=True)
        screenings = []
        for index, day in enumerate(days):
            instrument = instruments[index % len(instruments)]
            severity = start + (end - start) * index / max(count - 1, 1)
            completed = now - timedelta(days=day, minutes=rng.randint(0, 600))
            screenings.append(
                {
                    "patient_id": patient_id,
                    "instrument": instrument,
                    "completed_at": load.iso(completed),
                    "answers": sheets[instrument].answers(rng, severity),
                }
            )
        found.append(Plan(patient_id, load.patient_profile(rng), screenings))
    return found


@dataclass
class Seeded:
    patients: list[str]
    services: list[str]
    referrals: list[str]
    positive: int = 0
    negative: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


async def seed(base_url: str, token: str, patients: list[str], seed_value: int = 5) -> Seeded:
    """Profiles, screenings and referrals through the API, CONCURRENCY requests in flight."""
    import httpx

    rng = random.Random(seed_value)
    gate = asyncio.Semaphore(CONCURRENCY)
    seeded = Seeded(patients=patients, services=[], referrals=[])
    positive_screenings: dict[str, list[tuple[str, str | None]]] = {}
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=60.0, limits=limits
    ) as client:

        async def call(method: str, path: str, expect: int | tuple[int, ...], **kwargs: Any) -> Any:
            async with gate:
                response = await client.request(method, path, **kwargs)
            if response.status_code not in (expect if isinstance(expect, tuple) else (expect,)):
                raise BenchError(f"{method} {path}: {response.status_code} {response.text[:500]}")
            return response.json()

        async def one(plan: Plan) -> None:
            await call("PUT", f"/v1/patients/{plan.patient_id}", (200, 201), json=plan.profile)
            for body in plan.screenings:
                result = await call(
                    "POST",
                    "/v1/screenings",
                    201,
                    json=body,
                    headers={"Idempotency-Key": f"seed-{uuid.uuid4()}"},
                )
                band = result["score"].get("band") or {}
                if band.get("positive"):
                    seeded.positive += 1
                    positive_screenings.setdefault(plan.patient_id, []).append(
                        (result["id"], band.get("signal"))
                    )
                else:
                    seeded.negative += 1

        started = time.monotonic()
        await asyncio.gather(*(one(plan) for plan in plans(patients)))
        log(
            f"  {len(patients)} patients, {seeded.positive + seeded.negative} screenings"
            f" ({seeded.positive} positive) in {time.monotonic() - started:.0f}s"
        )

        for offset in range(0, 1000, 200):
            page = await call(
                "GET", "/v1/directory/services", 200, params={"limit": 200, "offset": offset}
            )
            seeded.services += [item["id"] for item in page["items"]]
        page = await call(
            "GET", "/v1/directory/services", 200, params={"accepting": "true", "limit": 200}
        )
        open_services = [item["id"] for item in page["items"]]
        if not open_services:
            raise BenchError("no open directory services to refer to")

        statuses = list(REFERRAL_WEIGHTS)
        weights = list(REFERRAL_WEIGHTS.values())
        referred = rng.sample(patients, round(0.3 * len(patients)))

        async def refer(patient_id: str) -> None:
            screening_id, signal = rng.choice(positive_screenings.get(patient_id, [(None, None)]))
            body: dict[str, Any] = {
                "patient_id": patient_id,
                "service_id": rng.choice(open_services),
                "consent": {"given": True, "method": rng.choice(["verbal", "written"])},
                "need": signal or "loneliness",
            }
            if screening_id:
                body["screening_id"] = screening_id
            referral = await call("POST", "/v1/referrals", 201, json=body)
            status = rng.choices(statuses, weights)[0]
            for step in REFERRAL_PATHS[status]:
                referral = await call("PATCH", f"/v1/referrals/{referral['id']}", 200, json=step)
            seeded.referrals.append(referral["id"])
            seeded.statuses[referral["status"]] += 1

        started = time.monotonic()
        await asyncio.gather(*(refer(p) for p in referred))
        log(
            f"  {len(seeded.referrals)} referrals in {time.monotonic() - started:.0f}s: "
            + ", ".join(f"{s} {n}" for s, n in sorted(seeded.statuses.items()))
        )
    return seeded


# -- signing in ------------------------------------------------------------------------


def sign_in(base_url: str, env: dict[str, str]) -> str:
    """A coordinator of the clinic signed in through a single-use link: the session id."""
    import httpx

    load.run(
        load.belong(
            "users", "add", "--clinic", CLINIC, "--name", USER, "--role", "coordinator",
            "--if-missing",
        ),
        env=env,
        timeout=60,
    )  # fmt: skip
    printed = load.run(
        load.belong("users", "link", "--clinic", CLINIC, "--user", USER, "--origin", base_url),
        env=env,
        timeout=60,
    )
    link = printed.stdout.strip().splitlines()[-1].strip()
    response = httpx.get(link, follow_redirects=False, timeout=30)
    cookie = response.headers.get("set-cookie", "")
    if response.status_code != 303 or not cookie.startswith(SESSION_COOKIE + "="):
        raise BenchError(f"sign-in link: {response.status_code} {cookie!r}")
    return cookie.split(";", 1)[0].split("=", 1)[1]


# -- measuring -------------------------------------------------------------------------


@dataclass(frozen=True)
class PageSpec:
    key: str
    route: str
    """The route as the table shows it."""
    path: Callable[[random.Random, Seeded], str]


def _pick(values: Sequence[str]) -> Callable[[random.Random, Seeded], str]:
    return lambda rng, seeded: rng.choice(values)


PAGES = [
    PageSpec("worklist", "/app", _pick(["/app"])),
    PageSpec("worklist-requested", "/app?status=requested", _pick(["/app?status=requested"])),
    PageSpec("patient", "/app/patients/{id}", lambda r, s: f"/app/patients/{r.choice(s.patients)}"),
    PageSpec(
        "refer",
        "/app/patients/{id}/refer",
        lambda r, s: f"/app/patients/{r.choice(s.patients)}/refer",
    ),
    PageSpec(
        "referral", "/app/referrals/{id}", lambda r, s: f"/app/referrals/{r.choice(s.referrals)}"
    ),
    PageSpec("screening-new", "/app/screenings/new", _pick(["/app/screenings/new"])),
    PageSpec("screening-form", "/app/screenings/new/ucla-3", _pick(["/app/screenings/new/ucla-3"])),
    PageSpec("directory", "/app/directory", _pick(["/app/directory"])),
    PageSpec(
        "directory-filtered",
        "/app/directory?category=support-group&language=es",
        _pick(["/app/directory?category=support-group&language=es"]),
    ),
    PageSpec(
        "service", "/app/directory/{id}", lambda r, s: f"/app/directory/{r.choice(s.services)}"
    ),
    PageSpec(
        "service-edit",
        "/app/directory/{id}/edit",
        lambda r, s: f"/app/directory/{r.choice(s.services)}/edit",
    ),
    PageSpec("account", "/app/account", _pick(["/app/account"])),
]
FLOOR = PageSpec("floor", "floor: `GET /health/live`", _pick(["/health/live"]))
COMMIT_FLOOR = PageSpec("commit", "floor: one INSERT committed (asyncpg)", _pick([""]))
FLOORS = (FLOOR, COMMIT_FLOOR)
SERVER_TIMING = re.compile(r"(?:^|,)\s*([\w.-]+)[^,]*?;\s*dur=([0-9.]+)")


@dataclass
class PageResult:
    spec: PageSpec
    state: str = "ok"
    """ok, missing (404/405 for its route) or failing (another status)."""
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    """The largest Server-Timing duration of each response, when the server sends one."""
    statuses: Counter[int] = field(default_factory=Counter)
    bytes: int = 0
    app_cpu_s: float = 0.0
    """CPU time of the server's worker during the measured requests."""
    db_cpu_s: float = 0.0
    """CPU time of the database's PostgreSQL backends during the measured requests."""

    def quantile(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(self.latencies_ms if values is None else values)
        if not data:
            return float("nan")
        return statistics.quantiles(data, n=100, method="inclusive")[round(q * 100) - 1]


def server_duration(header: str | None) -> float | None:
    if not header:
        return None
    durations = [float(d) for _, d in SERVER_TIMING.findall(header)]
    return max(durations) if durations else None


def probe_page(
    client: Any, spec: PageSpec, seeded: Seeded, opts: argparse.Namespace, rng: random.Random
) -> PageResult:
    """One request to see whether the page exists (404 or 405: missing), then the warm-up."""
    result = PageResult(spec)
    probe = client.get(spec.path(rng, seeded))
    if probe.status_code in (404, 405):
        result.state = "missing"
        result.statuses[probe.status_code] += 1
        return result
    for _ in range(opts.warmup):
        client.get(spec.path(rng, seeded))
    return result


def measure_block(
    client: Any,
    result: PageResult,
    seeded: Seeded,
    count: int,
    opts: argparse.Namespace,
    rng: random.Random,
    workers: Sequence[int],
) -> None:
    """``count`` sequential requests to the page, timed, and the CPU they cost."""
    paths = [result.spec.path(rng, seeded) for _ in range(count)]
    sampler = load.CpuSampler(workers, opts.database)
    sampler.start()
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        body = response.content
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        result.statuses[response.status_code] += 1
        result.bytes += len(body)
        server = server_duration(response.headers.get("server-timing"))
        if server is not None:
            result.server_ms.append(server)
    app_s, db_s = sampler.finish()
    result.app_cpu_s += app_s
    result.db_cpu_s += db_s
    if set(result.statuses) != {200}:
        result.state = "failing"


def commit_floor(database_url: str, opts: argparse.Namespace) -> PageResult:
    """One-row INSERTs, each its own transaction, straight through asyncpg: what the WAL
    flush of a commit costs on this machine now. Every page that shows patient data waits
    for one (its audit event, group-committed) before it answers."""
    import asyncpg

    result = PageResult(COMMIT_FLOOR)

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_app_commit (id bigserial PRIMARY KEY,"
                " at timestamptz NOT NULL DEFAULT now())"
            )
            insert = await conn.prepare("INSERT INTO bench_app_commit DEFAULT VALUES")
            for index in range(opts.warmup + opts.requests):
                started = time.perf_counter()
                await insert.fetch()
                if index >= opts.warmup:
                    result.latencies_ms.append((time.perf_counter() - started) * 1000)
            await conn.execute("DROP TABLE bench_app_commit")
        finally:
            await conn.close()

    asyncio.run(run())
    result.statuses[200] = len(result.latencies_ms)
    return result


def measure(
    base_url: str,
    session: str,
    seeded: Seeded,
    opts: argparse.Namespace,
    workers: Sequence[int],
    database_url: str,
) -> list[PageResult]:
    import httpx

    rng = random.Random(opts.seed)
    headers = {"Cookie": f"{SESSION_COOKIE}={session}"}
    with httpx.Client(
        base_url=base_url, headers=headers, timeout=30.0, follow_redirects=False
    ) as client:
        specs = [FLOOR, *(p for p in PAGES if not opts.page or p.key in opts.page)]
        pages = [probe_page(client, spec, seeded, opts, rng) for spec in specs]
        present = [page for page in pages if page.state != "missing"]
        # Blocks of a few requests per page in turn, so that a busy moment of the machine
        # falls on every page alike rather than on whichever was being measured.
        for first in range(0, opts.requests, opts.block):
            count = min(opts.block, opts.requests - first)
            for result in present:
                measure_block(client, result, seeded, count, opts, rng, workers)
        results = [pages[0], commit_floor(database_url, opts), *pages[1:]]
        for result in results:
            if result.state == "missing":
                log(f"  {result.spec.route}: missing ({next(iter(result.statuses))})")
            else:
                log(
                    f"  {result.spec.route}: p50 {result.quantile(0.5):.1f} ms, p95"
                    f" {result.quantile(0.95):.1f} ms ({result.state}, "
                    + ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items()))
                    + ")"
                )
    return results


def report(results: list[PageResult], opts: argparse.Namespace, seeding_s: float) -> bool:
    def ms(value: float) -> str:
        return "-" if value != value else f"{value:.1f}"

    lines = [
        "",
        f"## Clinician app pages ({opts.requests} sequential requests per page on one "
        f"keep-alive connection, granian 1 worker, {opts.patients:,} patients, "
        f"{opts.services:,} services; "
        + (f"seeded in {seeding_s:.0f} s)" if seeding_s == seeding_s else "reused database)"),
        "",
        "Latency in ms as the client saw it (loopback). The floors, measured the same way "
        "in the same run: `GET /health/live` (the framework, this client and this machine) "
        "and one committed INSERT (the WAL flush every audited page waits for). server p95: "
        "the largest `Server-Timing` duration, when the server sends one. CPU ms/req: the "
        "server's worker (app) and the database's backends (db) per request.",
        "",
        "| page | n | p50 | p95 | p99 | max | server p95 | CPU ms/req app+db | target "
        "| p95/target | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    passed = True
    for result in results:
        spec = result.spec
        floor = spec in FLOORS
        if result.state == "missing":
            status = next(iter(result.statuses))
            lines.append(f"| `{spec.route}` | 0 | | | | | | | | | missing ({status}) |")
            continue
        n = len(result.latencies_ms)
        cpu = (
            f"{1000 * result.app_cpu_s / n:.2f}+{1000 * result.db_cpu_s / n:.2f}"
            if spec is not COMMIT_FLOOR
            else "-"
        )
        p95 = result.quantile(0.95)
        if floor:
            verdict = "floor"
        elif result.state == "failing":
            bad = ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items()) if s != 200)
            verdict = f"FAIL (answers {bad})"
            passed = False
        elif p95 >= TARGET_MS:
            verdict = "FAIL (p95)"
            passed = False
        else:
            verdict = "PASS"
        lines.append(
            f"| {spec.route if floor else f'`{spec.route}`'} | {len(result.latencies_ms)} "
            f"| {ms(result.quantile(0.5))} "
            f"| {ms(p95)} | {ms(result.quantile(0.99))} | {ms(max(result.latencies_ms))} "
            f"| {ms(result.quantile(0.95, result.server_ms)) if result.server_ms else '-'} "
            f"| {cpu} | {'' if floor else f'{TARGET_MS:g}'} "
            f"| {'' if floor else f'{p95 / TARGET_MS:.2f}'} | {verdict} |"
        )
    print("\n".join(lines), flush=True)
    return passed


# -- profiling -------------------------------------------------------------------------


def profile(
    key: str, env: dict[str, str], session: str, seeded: Seeded, opts: argparse.Namespace
) -> None:
    """The page called in-process under cProfile (profile_request.py ``page``), on the
    benchmark's database and session."""
    spec = next(p for p in PAGES if p.key == key)
    rng = random.Random(opts.seed + 1)
    paths = [spec.path(rng, seeded) for _ in range(50)]
    command = [
        sys.executable, str(HERE / "profile_request.py"), "page",
        "--requests", str(opts.requests), "--cookie", f"{SESSION_COOKIE}={session}",
        *[arg for path in paths for arg in ("--path", path)],
    ]  # fmt: skip
    log(f"profiling {spec.route} in-process: {' '.join(command[:3])} ...")
    subprocess.run(command, env=env, cwd=ROOT, check=False, timeout=600)


# -- the run ---------------------------------------------------------------------------


def create_clinic(opts: argparse.Namespace, env: dict[str, str], work: Path) -> str:
    """A fresh database with the clinic, its API client and its directory: the token."""
    load.create_database(opts.admin_url, opts.database)
    load.run(load.belong("db", "upgrade"), env=env, timeout=120)
    load.run(load.belong("clinics", "create", "--name", CLINIC), env=env, timeout=60)
    from service.platform.credentials import SCOPES

    created = load.run(
        load.belong(
            "clients", "create", "--clinic", CLINIC, "--name", "bench-app",
            *[arg for scope in SCOPES for arg in ("--scope", scope)],
        ),
        env=env,
        timeout=60,
    )  # fmt: skip
    started = time.monotonic()
    directory_file = work / "directory.hsds.json"
    directory_file.write_text(json.dumps(directory_services(opts.services)), encoding="utf-8")
    log(f"importing {opts.services:,} HSDS services (belong directory import)")
    load.run(
        load.belong("directory", "import", "--clinic", CLINIC, str(directory_file)),
        env=env,
        timeout=20 * 60,
    )
    log(f"  directory imported in {time.monotonic() - started:.0f}s")
    return created.stdout.strip().splitlines()[-1].strip()


def seeded_before(plain_url: str) -> Seeded:
    """What an earlier run (``--keep-db``) seeded, read back from its database."""
    import asyncpg

    async def read() -> Seeded:
        conn = await asyncpg.connect(plain_url)
        try:
            clinic = await conn.fetchval("SELECT id FROM clinics WHERE name = $1", CLINIC)
            if clinic is None:
                raise BenchError(f"--reuse-db: no clinic {CLINIC!r} in this database")
            ids = [
                [row[0] for row in await conn.fetch(query, clinic)]
                for query in (
                    "SELECT id FROM patients WHERE clinic_id = $1 ORDER BY id",
                    "SELECT id FROM directory_services WHERE clinic_id = $1 ORDER BY id LIMIT 1000",
                    "SELECT id FROM referrals WHERE clinic_id = $1 ORDER BY id",
                )
            ]
        finally:
            await conn.close()
        return Seeded(patients=ids[0], services=ids[1], referrals=ids[2])

    seeded = asyncio.run(read())
    if not (seeded.patients and seeded.services and seeded.referrals):
        raise BenchError("--reuse-db: the database holds no seeded clinic")
    return seeded


def bench(opts: argparse.Namespace) -> bool:
    load.check_loopback(opts.admin_url)
    work = Path(tempfile.mkdtemp(prefix="belong-bench-app-"))
    database_url = load.with_database(opts.admin_url, opts.database, "postgresql+asyncpg")
    plain_url = load.with_database(opts.admin_url, opts.database, "postgresql")
    metrics_dir = work / "metrics"
    metrics_dir.mkdir()
    env = load.belong_env(dict(os.environ), database_url, metrics_dir, load.default_pool_size())
    patients = [f"bench-{i:04d}" for i in range(opts.patients)]
    log(f"database {opts.database} (work files in {work})")
    try:
        seeding_started = time.monotonic()
        if opts.reuse_db:
            load.run(load.belong("db", "upgrade"), env=env, timeout=120)
            token = ""
        else:
            token = create_clinic(opts, env, work)
        port = load.free_port()
        server = load.Server(
            "belong",
            [*load.belong("serve"), "--host", load.LOOPBACK, "--port", str(port), "--workers", "1"],
            env,
            port,
            work / "belong.log",
            1,
        )
        with load.serving(server):
            if opts.reuse_db:
                seeded = seeded_before(plain_url)
                seeding_s = float("nan")
                log(f"reusing {len(seeded.patients):,} patients, {len(seeded.referrals)} referrals")
            else:
                log(f"seeding {len(patients):,} patients through the API ({CONCURRENCY} in flight)")
                seeded = asyncio.run(seed(server.base_url, token, patients))
                seeding_s = time.monotonic() - seeding_started
                log(f"seeded in {seeding_s:.0f}s (directory import included)")
            load.vacuum(plain_url)
            session = sign_in(server.base_url, env)
            log(f"measuring {len(PAGES)} pages, {opts.requests} requests each")
            results = measure(server.base_url, session, seeded, opts, server.workers(), plain_url)
        passed = report(results, opts, seeding_s)
        if opts.profile:
            profile(opts.profile, env, session, seeded, opts)
        return passed
    finally:
        if opts.keep_db or opts.reuse_db:
            log(f"keeping database {opts.database}")
        else:
            try:
                load.drop_database(opts.admin_url, opts.database)
            except Exception as exc:  # reported, not fatal at the end
                log(f"could not drop {opts.database}: {exc}")
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    keys = [p.key for p in PAGES]
    parser = argparse.ArgumentParser(description="Clinician app benchmark (see the module doc)")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per page")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per page")
    parser.add_argument(
        "--block", type=int, default=20, help="requests to one page before the next page's turn"
    )
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3, help="for the pages' random ids")
    parser.add_argument(
        "--page", action="append", choices=keys, help="measure only these pages (repeatable)"
    )
    parser.add_argument(
        "--profile", choices=keys, help="then cProfile this page in-process (profile_request.py)"
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a loopback PostgreSQL server, as a superuser (env BENCH_POSTGRES_URL)",
    )
    parser.add_argument("--database", default="belong_bench_app")
    parser.add_argument("--keep-db", action="store_true", help="leave the database for a look")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="measure again on the database a --keep-db run left, without seeding it",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="exit 0 even when a target is missed"
    )
    opts = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", opts.database):
        parser.error("--database: lower-case letters, digits and _")
    try:
        passed = bench(opts)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except Exception:  # any other failure is the benchmark's, not a missed target
        import traceback

        traceback.print_exc()
        return 2
    return 0 if passed or opts.report_only else 1


if __name__ == "__main__":
    raise SystemExit(main())
