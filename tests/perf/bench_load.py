"""Load benchmark: Belong on PostgreSQL under granian, against a bare Litestar + asyncpg
ceiling and against the lean limit of a screening.

    .venv/bin/python tests/perf/bench_load.py            # full run (10 s per measurement)
    .venv/bin/python tests/perf/bench_load.py --quick    # smoke test (3 s per measurement)

What it does, all on loopback:

1. creates a fresh PostgreSQL database (``belong_bench``), runs ``belong db upgrade`` and
   ``belong clients create`` (a clinic token with every scope);
2. seeds 1,000 patients through the API (a profile each and five screenings of history:
   UCLA-3 twice, UCLA-20, LSNS-6 and PEG), imports 10,000 generated HSDS services with
   ``belong directory import`` and makes a referral for every other patient;
3. measures the ceiling (tests/perf/ceiling_app.py: POST one row with asyncpg) and then
   Belong (``belong serve --workers 2``, rate limit off) with wrk at 8 and 64 connections:
   POST /v1/screenings (ucla-3, ucla-20; a fresh Idempotency-Key each),
   GET /v1/patients/{id}/referrals and GET /fhir/Observation?patient=...&_count=20;
   then the lean limit (tests/perf/lean_screening_app.py: the ucla-3 screening's work,
   done by Belong's own functions on a bare Litestar app) with the same wrk script;
4. prints one table (requests/s, p50, p99, each with its ratio to the ceiling), Belong's
   screening against its lean limit, the resident memory of every worker, and PASS/FAIL
   for each target; drops the database.

Exit status: 0 when every target passes, 1 when one fails (0 with --report-only), 2 when
the benchmark could not run. Nothing is written into the repository; temporary files go to
a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # for ceiling_app
SEED_DIRECTORY = ROOT / "deploy" / "seed" / "directory.hsds.json"
INSTRUMENTS_DIR = ROOT / "schemas" / "instruments"

LOOPBACK = "127.0.0.1"
CLINIC = "Bench Clinic"
HISTORY = (  # (instrument, days before now) for each seeded patient
    ("ucla-3", 90),
    ("ucla-20", 75),
    ("lsns-6", 60),
    ("peg", 45),
    ("ucla-3", 30),
)
CONNECTIONS = (8, 64)
WRK_THREADS = 2
WRK_TIMEOUT = "10s"

# Targets (ratios measured in the same run): a screening against its lean limit, the rest
# against the ceiling.
SCREENING_TO_LEAN_RPS_AT_64 = 0.80
SCREENING_P99_AT_8 = 3.0
OBSERVATION_RPS_AT_64 = 0.50
WORKER_RSS_MB = 200.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """The benchmark could not run (not a failed target)."""


# -- processes -------------------------------------------------------------------------


def run(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(cmd), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {timeout:g}s: {' '.join(cmd)}") from exc
    if check and done.returncode != 0:
        raise BenchError(
            f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    return done


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not found: apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if run(install, env=env, timeout=300, check=False).returncode != 0:
        run(["apt-get", "update"], env=env, timeout=300)
        run(install, env=env, timeout=300)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is still missing after apt-get install")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the granian workers of a server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time used so far by these processes (those still alive)."""
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def backends(database: str) -> list[int]:
    """PostgreSQL backend processes serving ``database`` (by their process title)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if title.startswith("postgres: ") and f" {database} " in title:
                found.append(int(entry.name))
    return found


class CpuSampler(threading.Thread):
    """CPU time used during a run by the server's workers and by the benchmark database's
    backends. Backends come and go (pool overflow), so they are polled: one that ends
    between two polls loses at most one interval of its time."""

    def __init__(self, workers: Sequence[int], database: str, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.workers = list(workers)
        self.database = database
        self.interval = interval
        self._stop_event = threading.Event()
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._poll(initial=True)

    def _poll(self, initial: bool = False) -> None:
        for pid in backends(self.database):
            used = cpu_seconds([pid])
            self._first.setdefault(pid, used if initial else 0.0)
            self._last[pid] = used
        self._app_last = cpu_seconds(self.workers)
        if initial:
            self._app_first = self._app_last

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self._poll()

    def finish(self) -> tuple[float, float]:
        """(app, db) CPU seconds used since the sampler was made."""
        self._stop_event.set()
        self.join(timeout=5)
        self._poll()
        db = sum(self._last[pid] - self._first[pid] for pid in self._last)
        return self._app_last - self._app_first, db


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", math.nan), values.get("VmHWM", math.nan)


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    workers_expected: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, ready_path: str = "/health/ready", timeout: float = 60.0) -> None:
        import httpx

        log(f"starting {self.name} on {self.base_url}")
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
            try:
                answer = httpx.get(self.base_url + ready_path, timeout=2.0)
                # Every worker must be up, not only the first to answer.
                if (
                    answer.status_code == 200
                    and len(children(self.process.pid)) >= self.workers_expected
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise BenchError(f"{self.name} not ready after {timeout:g}s:\n{self.tail()}")

    def workers(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def stop(self, timeout: float = 40.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        log(f"stopping {self.name}")
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session, started above
            self.process.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- database --------------------------------------------------------------------------


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise BenchError(f"only loopback databases are benchmarked, not {host!r}")


def with_database(url: str, database: str, scheme: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit((scheme or parts.scheme, parts.netloc, f"/{database}", "", ""))


async def _admin(admin_url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement, timeout=60)
    finally:
        await conn.close()


def vacuum(database_url: str) -> None:
    """What autovacuum does to a live database after a burst of writes (the seeding, or the
    previous scenario's screenings): fresh statistics, and a visibility map that lets
    counts read indexes alone. Every scenario starts from it, so none is measured against
    the history another left behind; this machine's PostgreSQL may run with autovacuum off.
    """
    asyncio.run(_admin(database_url, "VACUUM (ANALYZE)"))


def create_database(admin_url: str, database: str) -> None:
    asyncio.run(
        _admin(
            admin_url,
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            f'CREATE DATABASE "{database}"',
        )
    )


def database_sessions(opts: Options) -> int:
    """Connections ever opened to the benchmark database (PostgreSQL 14+; else 0)."""

    async def read() -> int:
        import asyncpg

        conn = await asyncpg.connect(opts.admin_url, timeout=10)
        try:
            value = await conn.fetchval(
                "SELECT sessions FROM pg_stat_database WHERE datname = $1", opts.database
            )
        except asyncpg.PostgresError:
            return 0
        finally:
            await conn.close()
        return int(value or 0)

    return asyncio.run(read())


def drop_database(admin_url: str, database: str) -> None:
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


# -- data ------------------------------------------------------------------------------

CENTRES = [(51.5052, -0.0204), (51.4545, -0.1300), (51.5560, -0.2800), (51.5900, 0.0500)]
LANGUAGES = ["en"] * 12 + ["es", "pl", "ur", "pa", "fr", "ar", "zh"]
CONDITIONS = ["crps", "chronic-headache", "low-back-pain", "chronic-pain-syndrome", "fibromyalgia"]
MODALITIES = ["in-person", "online", "phone"]
AGE_BANDS = ["18-29", "30-44", "45-64", "65-74", "75+"]
KEEP_IDS = ("taxonomy_term", "taxonomy_term_id")
"""The belong taxonomy's own ids stay as published; every other id is made new."""


def _near(rng: random.Random, spread_deg: float = 0.25) -> tuple[float, float]:
    lat, lon = rng.choice(CENTRES)
    return (
        round(lat + rng.uniform(-spread_deg, spread_deg), 5),
        round(lon + rng.uniform(-1.6 * spread_deg, 1.6 * spread_deg), 5),
    )


def _new_ids(node: Any, mapping: dict[str, str], rng: random.Random) -> Any:
    if isinstance(node, list):
        return [_new_ids(item, mapping, rng) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key in KEEP_IDS:
            result[key] = value
        elif (key == "id" or key.endswith("_id")) and isinstance(value, str):
            if value not in mapping:
                mapping[value] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            result[key] = mapping[value]
        else:
            result[key] = _new_ids(value, mapping, rng)
    return result


def directory_services(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` HSDS 3.0 services shaped like deploy/seed/directory.hsds.json: each a copy
    of a seed service with new ids, a moved location and varied belong attributes."""
    rng = random.Random(seed)
    templates = json.loads(SEED_DIRECTORY.read_text(encoding="utf-8"))
    services = []
    for index in range(count):
        service = _new_ids(copy.deepcopy(rng.choice(templates)), {}, rng)
        service["name"] = f"{service['name']} {index:05d}"[:200]
        for link in service.get("service_at_locations") or []:
            location = link.get("location") or {}
            if location.get("latitude") is not None:
                location["latitude"], location["longitude"] = _near(rng)
        for attribute in service.get("attributes") or []:
            code = attribute["taxonomy_term"]["code"]
            if code == "accepting-referrals":
                attribute["value"] = "true" if rng.random() < 0.92 else "false"
            elif code == "capacity":
                attribute["value"] = str(rng.choice([0, 2, 4, 6, 8, 10, 12, 15, 20]))
            elif code == "catchment-km":
                attribute["value"] = str(rng.choice([8, 10, 12, 15, 20, 25, 30, 40]))
            elif code == "condition":
                attribute["value"] = rng.choice(CONDITIONS)
        services.append(service)
    return services


def patient_profile(rng: random.Random) -> dict[str, Any]:
    lat, lon = _near(rng, 0.3)
    profile: dict[str, Any] = {
        "pain_conditions": rng.sample(CONDITIONS, rng.choice([1, 1, 1, 2])),
        "languages": sorted({"en", rng.choice(LANGUAGES)}) if rng.random() < 0.3 else ["en"],
        "location": {"lat": lat, "lon": lon},
        "preferred_modalities": rng.sample(MODALITIES, rng.choice([0, 1, 1, 2])),
        "age_band": rng.choice(AGE_BANDS),
    }
    if rng.random() < 0.7:
        profile["max_travel_km"] = rng.choice([5, 10, 15, 20, 30])
    return profile


def answer_options() -> dict[str, dict[str, list[int]]]:
    """instrument -> linkId -> the option values a patient may pick."""
    from service.instruments.loader import load_catalog

    catalog = load_catalog(INSTRUMENTS_DIR)
    options: dict[str, dict[str, list[int]]] = {}
    for instrument_id in {name for name, _ in HISTORY} | {"ucla-3", "ucla-20"}:
        definition = catalog[instrument_id].definition
        options[instrument_id] = {
            item.linkId: [o.value for o in definition.option_sets[item.options] if not o.declined]
            for item in definition.items
        }
    return options


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def seed_patients(
    base_url: str, token: str, patients: list[str], concurrency: int = 16, seed: int = 11
) -> None:
    """A profile and the HISTORY screenings for each patient, through the API."""
    import httpx

    rng = random.Random(seed)
    options = answer_options()
    now = datetime.now(UTC)
    plans = []
    for patient_id in patients:
        screenings = []
        for instrument, days in HISTORY:
            answers = {link: rng.choice(values) for link, values in options[instrument].items()}
            completed = now - timedelta(days=days, minutes=rng.randint(0, 600))
            screenings.append(
                {
                    "patient_id": patient_id,
                    "instrument": instrument,
                    "completed_at": iso(completed),
                    "answers": answers,
                }
            )
        plans.append((patient_id, patient_profile(rng), screenings))

    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    done = 0
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as client:

        async def one(patient_id: str, profile: dict[str, Any], screenings: list[Any]) -> None:
            nonlocal done
            async with gate:
                response = await client.put(f"/v1/patients/{patient_id}", json=profile)
                if response.status_code not in (200, 201):
                    raise BenchError(f"PUT profile: {response.status_code} {response.text[:500]}")
                for body in screenings:
                    response = await client.post(
                        "/v1/screenings",
                        json=body,
                        headers={"Idempotency-Key": f"seed-{uuid.uuid4()}"},
                    )
                    if response.status_code != 201:
                        raise BenchError(
                            f"POST screening: {response.status_code} {response.text[:500]}"
                        )
            done += 1
            if done % 250 == 0:
                log(f"  seeded {done}/{len(patients)} patients")

        await asyncio.wait_for(asyncio.gather(*(one(*plan) for plan in plans)), timeout=30 * 60)


async def seed_referrals(
    base_url: str, token: str, patients: list[str], concurrency: int = 16
) -> None:
    """A referral, to an open service, for every other patient."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as client:
        page = await client.get(
            "/v1/directory/services", params={"accepting": "true", "limit": 200}
        )
        if page.status_code != 200:
            raise BenchError(f"directory search: {page.status_code} {page.text[:500]}")
        service_ids = [item["id"] for item in page.json()["items"]]
        if not service_ids:
            raise BenchError("no open directory services to refer to")
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, patient_id: str) -> None:
            async with gate:
                response = await client.post(
                    "/v1/referrals",
                    json={
                        "patient_id": patient_id,
                        "service_id": service_ids[index % len(service_ids)],
                        "consent": {"given": True, "method": "verbal"},
                        "need": "loneliness",
                    },
                )
                if response.status_code != 201:
                    raise BenchError(f"POST referral: {response.status_code} {response.text[:500]}")

        await asyncio.wait_for(
            asyncio.gather(*(one(i, p) for i, p in enumerate(patients) if i % 2 == 0)),
            timeout=10 * 60,
        )


# -- wrk -------------------------------------------------------------------------------

LUA_COMMON = """
local patients = {%(patients)s}
local n_patients = #patients
local counter = 0
local thread_count = 0
local run_id = "%(run_id)s"

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919 + math.floor(os.clock() * 1e6))
  prefix = string.format("%%s-%%d-%%d", run_id, tid or 0, math.random(1, 1000000000))
end

local function next_patient()
  counter = counter + 1
  return patients[((counter * 7 + (tid or 0) * 131) %% n_patients) + 1]
end
"""

LUA_SCREENING = """
local instrument = "%(instrument)s"
local items = %(items)d
local high = %(high)d
local low = %(low)d

function request()
  local patient = next_patient()
  local parts = {}
  for i = 1, items do
    parts[i] = string.format('"%%d":%%d', i, math.random(low, high))
  end
  local body = string.format(
    '{"patient_id":"%%s","instrument":"%%s","completed_at":"%%s","answers":{%%s}}',
    patient, instrument, os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ"), table.concat(parts, ","))
  local headers = {
    ["Authorization"] = "Bearer %(token)s",
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%%s-%%d", prefix, counter),
  }
  return wrk.format("POST", "/v1/screenings", headers, body)
end
"""

LUA_GET = """
function request()
  local patient = next_patient()
  local headers = {["Authorization"] = "Bearer %(token)s"}
  return wrk.format("GET", string.format("%(path)s", patient), headers)
end
"""

LUA_CEILING = """
function request()
  local patient = next_patient()
  local body = string.format('{"patient_id":"%%s","value":%%d}', patient, math.random(0, 100))
  local headers = {["Content-Type"] = "application/json"}
  return wrk.format("POST", "/rows", headers, body)
end
"""


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    script: str


def scenarios(token: str, patients: list[str], directory: Path) -> dict[str, Scenario]:
    common = LUA_COMMON % {
        "patients": ",".join(json.dumps(p) for p in patients),
        "run_id": uuid.uuid4().hex[:12],
    }
    options = answer_options()
    defs = [("ceiling", "ceiling (bare Litestar + asyncpg INSERT)", LUA_CEILING % {})]
    for instrument in ("ucla-3", "ucla-20"):
        values = sorted({v for vs in options[instrument].values() for v in vs})
        links = list(options[instrument])
        assert links == [str(i) for i in range(1, len(links) + 1)], links
        defs.append(
            (
                instrument,
                f"POST /v1/screenings ({instrument})",
                LUA_SCREENING
                % {
                    "instrument": instrument,
                    "items": len(links),
                    "low": values[0],
                    "high": values[-1],
                    "token": token,
                },
            )
        )
    defs.append(
        (
            "referrals",
            "GET /v1/patients/{id}/referrals",
            LUA_GET % {"token": token, "path": "/v1/patients/%s/referrals"},
        )
    )
    defs.append(
        (
            "observations",
            "GET /fhir/Observation?patient=...",
            LUA_GET % {"token": token, "path": "/fhir/Observation?patient=%s&_count=20"},
        )
    )
    found = {}
    for key, label, body in defs:
        path = directory / f"{key}.lua"
        path.write_text(common + body, encoding="utf-8")
        found[key] = Scenario(key, label, str(path))
    # The lean limit gets Belong's requests (it ignores the token).
    found["lean"] = Scenario("lean", "lean limit (ucla-3, bare Litestar)", found["ucla-3"].script)
    return found


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    raw: str = field(repr=False, default="")
    app_cpu_ms: float = math.nan
    """CPU time of the server's worker processes per request."""
    db_cpu_ms: float = math.nan
    """CPU time of the benchmark database's PostgreSQL backends per request."""
    sessions: int = 0
    """Database connections opened during the run (pg_stat_database.sessions)."""


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"([0-9]+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"cannot read wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", output)
    errors = re.search(
        r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)", output
    )
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(x) for x in errors.groups()) if errors else 0,
        raw=output,
    )


def run_wrk(wrk: str, base_url: str, script: str, connections: int, seconds: float) -> WrkResult:
    cmd = [
        wrk,
        "-t",
        str(min(WRK_THREADS, connections)),
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--latency",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        script,
        base_url,
    ]
    done = run(cmd, timeout=seconds + 60)
    return parse_wrk(done.stdout)


# -- the run ---------------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    warmup: float
    patients: int
    services: int
    workers: int
    admin_url: str
    database: str
    keep_db: bool
    profile: bool
    pool: int


def belong_env(
    base: dict[str, str], database_url: str, metrics_dir: Path, pool: int
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("BELONG_")}
    env.update(
        BELONG_DATABASE_URL=database_url,
        BELONG_RATE_LIMIT_PER_MINUTE="0",
        BELONG_LOG_LEVEL="WARNING",
        BELONG_DB_POOL_SIZE=str(pool),
        BELONG_DB_MAX_OVERFLOW="0",
        CEILING_POOL_MAX=str(pool),  # the ceiling's pool is Belong's
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    return env


def default_pool_size() -> int:
    from service.settings import Settings

    return Settings().db_pool_size


def belong(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def check_endpoints(base_url: str, token: str, patient_id: str) -> None:
    """One request of each kind before the load: the answers the load expects."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        for instrument, answers in (("ucla-3", {"1": 3, "2": 3, "3": 2}), ("ucla-20", None)):
            body = {
                "patient_id": patient_id,
                "instrument": instrument,
                "completed_at": iso(datetime.now(UTC) - timedelta(minutes=1)),
                "answers": answers or {str(i): 1 + i % 4 for i in range(1, 21)},
            }
            response = client.post(
                "/v1/screenings", json=body, headers={"Idempotency-Key": f"check-{uuid.uuid4()}"}
            )
            if response.status_code != 201:
                raise BenchError(
                    f"check {instrument}: {response.status_code} {response.text[:500]}"
                )
            if instrument == "ucla-3":
                recommended = len(response.json()["recommendations"]["items"])
                considered = response.json()["recommendations"]["considered"]
                log(f"  ucla-3 check: {recommended} recommendations of {considered} services")
        response = client.get(f"/v1/patients/{patient_id}/referrals")
        if response.status_code != 200:
            raise BenchError(f"check referrals: {response.status_code} {response.text[:500]}")
        response = client.get("/fhir/Observation", params={"patient": patient_id, "_count": 20})
        entries = len(response.json().get("entry") or []) if response.status_code == 200 else -1
        if entries != 20:
            raise BenchError(f"check Observation search: {response.status_code}, {entries} entries")


def prime_workers(base_url: str, token: str, patients: list[str], workers: int) -> None:
    """Build each worker's directory cache before any measurement, one request at a time.

    A cold worker builds its match candidates from the whole directory on the first
    request that needs them; concurrent cold requests would each build it (a stampede
    that would be charged to whichever scenario runs first). A new connection per request
    lets the kernel spread the requests over the workers.
    """
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_keepalive_connections=0)
    timings = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=60.0, limits=limits) as client:
        for index in range(8 * workers):
            body = {
                "patient_id": patients[index % len(patients)],
                "instrument": "ucla-3",
                "completed_at": iso(datetime.now(UTC) - timedelta(minutes=1)),
                "answers": {"1": 3, "2": 3, "3": 3},
            }
            started = time.perf_counter()
            response = client.post(
                "/v1/screenings", json=body, headers={"Idempotency-Key": f"prime-{uuid.uuid4()}"}
            )
            timings.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise BenchError(f"prime: {response.status_code} {response.text[:500]}")
    slow = sorted(timings, reverse=True)[:workers]
    log(
        f"  primed: slowest (cold cache) {', '.join(f'{t * 1000:.0f}' for t in slow)} ms,"
        f" median {sorted(timings)[len(timings) // 2] * 1000:.0f} ms"
    )


def measure(
    wrk: str,
    server: Server,
    scenario: Scenario,
    opts: Options,
    results: dict[tuple[str, int], WrkResult],
    profile_dir: Path | None = None,
) -> None:
    if opts.warmup > 0:
        run_wrk(wrk, server.base_url, scenario.script, CONNECTIONS[0], opts.warmup)
    for connections in CONNECTIONS:
        time.sleep(0.5)
        spy = None
        if profile_dir is not None and connections == CONNECTIONS[-1]:
            spy = start_profile(server, scenario, profile_dir, opts.duration)
        workers = server.workers()
        sessions_before = database_sessions(opts)
        sampler = CpuSampler(workers, opts.database)
        sampler.start()
        try:
            result = run_wrk(wrk, server.base_url, scenario.script, connections, opts.duration)
        finally:
            app_used, db_used = sampler.finish()
        result.sessions = database_sessions(opts) - sessions_before
        if spy is not None:
            finish_profile(spy)
        if result.requests:
            result.app_cpu_ms = 1000 * app_used / result.requests
            result.db_cpu_ms = 1000 * db_used / result.requests
        results[(scenario.key, connections)] = result
        log(
            f"  {scenario.label} @{connections}: {result.rps:.0f} req/s,"
            f" p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms,"
            f" CPU/req {result.app_cpu_ms:.2f} ms app + {result.db_cpu_ms:.2f} ms db,"
            f" new db connections {result.sessions},"
            f" non-2xx {result.non_2xx}, socket errors {result.socket_errors}"
        )


def start_profile(
    server: Server, scenario: Scenario, directory: Path, seconds: float
) -> tuple[subprocess.Popen[bytes], Path] | None:
    spy = Path(sys.executable).parent / "py-spy"
    workers = server.workers()
    if not spy.exists() or not workers:
        log("  (no py-spy in the venv: --profile skipped)")
        return None
    out = directory / f"{scenario.key}-worker{workers[0]}.txt"
    cmd = [
        str(spy), "record", "--pid", str(workers[0]), "--duration", str(int(seconds)),
        "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out


def finish_profile(spy: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, out = spy
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=10)
    log(f"  py-spy profile (collapsed stacks): {out}")


def fmt_rps(value: float, ceiling: float, ratio: bool = True) -> str:
    text = f"{value:,.0f}"
    return f"{text} ({value / ceiling:.2f})" if ratio and ceiling else text


def fmt_ms(value: float, ceiling: float, ratio: bool = True) -> str:
    text = f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    return f"{text} ({value / ceiling:.1f}x)" if ratio and ceiling else text


def report(
    labels: dict[str, str],
    results: dict[tuple[str, int], WrkResult],
    memory: dict[str, list[tuple[int, float, float]]],
    opts: Options,
) -> bool:
    low, high = CONNECTIONS
    ceiling = {c: results[("ceiling", c)] for c in CONNECTIONS}
    header = ["scenario"]
    for c in CONNECTIONS:
        header += [f"rps@{c}", f"p50@{c}", f"p99@{c}"]
    header += ["CPU ms/req app+db @8 / @64", "non-2xx+errors @8 / @64"]
    lines = [
        "",
        f"## Belong load benchmark ({opts.duration:g} s per run, wrk {WRK_THREADS} threads, "
        f"granian {opts.workers} workers, {opts.patients} patients, {opts.services} services)",
        "",
        "Each figure is followed by its ratio to the ceiling at the same connection count "
        "(requests/s: share of the ceiling's; latency: times the ceiling's). CPU ms/req: "
        "CPU time of the server's workers (app) and of the database's PostgreSQL backends "
        "(db) per request, at 8 / 64 connections.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for key, label in labels.items():
        row = [label]
        for c in CONNECTIONS:
            r = results[(key, c)]
            is_ceiling = key == "ceiling"
            row += [
                fmt_rps(r.rps, ceiling[c].rps, not is_ceiling),
                fmt_ms(r.p50_ms, ceiling[c].p50_ms, not is_ceiling),
                fmt_ms(r.p99_ms, ceiling[c].p99_ms, not is_ceiling),
            ]
        row.append(
            " / ".join(
                f"{results[(key, c)].app_cpu_ms:.2f}+{results[(key, c)].db_cpu_ms:.2f}"
                for c in CONNECTIONS
            )
        )
        bad = [(results[(key, c)].non_2xx, results[(key, c)].socket_errors) for c in CONNECTIONS]
        row.append(" / ".join(f"{n}+{e}" for n, e in bad))
        lines.append("| " + " | ".join(row) + " |")

    def ratio(key: str, c: int, attr: str, to: str = "ceiling") -> float:
        return getattr(results[(key, c)], attr) / getattr(results[(to, c)], attr)

    lines += [
        "",
        f"{labels['ucla-3']} against its lean limit ({labels['lean']}): requests/s as a share "
        "of the lean limit's, and the CPU per request Belong adds (app + db):",
        "",
        "| connections | Belong rps | lean rps | Belong / lean | extra CPU ms/req app + db |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c in CONNECTIONS:
        ours, lean = results[("ucla-3", c)], results[("lean", c)]
        extra_app, extra_db = ours.app_cpu_ms - lean.app_cpu_ms, ours.db_cpu_ms - lean.db_cpu_ms
        lines.append(
            f"| {c} | {ours.rps:,.0f} | {lean.rps:,.0f} | {ratio('ucla-3', c, 'rps', 'lean'):.0%}"
            f" | {extra_app:+.2f} + {extra_db:+.2f} |"
        )

    lines += ["", "Resident memory per worker, after the load (peak in brackets):", ""]
    lines += ["| server | worker pid | RSS MB (peak) |", "|---|---:|---:|"]
    for server, workers in memory.items():
        for pid, rss, hwm in workers:
            lines.append(f"| {server} | {pid} | {rss:.0f} ({hwm:.0f}) |")

    belong_workers = memory.get("belong", [])
    peak = max((hwm for _, _, hwm in belong_workers), default=math.nan)
    targets = [
        (
            f"POST /v1/screenings (ucla-3) requests/s at {high} connections >= "
            f"{SCREENING_TO_LEAN_RPS_AT_64:.0%} of its lean limit's",
            ratio("ucla-3", high, "rps", "lean"),
            lambda v: v >= SCREENING_TO_LEAN_RPS_AT_64,
            "{:.0%}",
        ),
        (
            f"POST /v1/screenings (ucla-3) p99 at {low} connections <= "
            f"{SCREENING_P99_AT_8:g}x the ceiling's",
            ratio("ucla-3", low, "p99_ms"),
            lambda v: v <= SCREENING_P99_AT_8,
            "{:.1f}x",
        ),
        (
            f"FHIR Observation search requests/s at {high} connections >= "
            f"{OBSERVATION_RPS_AT_64:.0%} of the ceiling's",
            ratio("observations", high, "rps"),
            lambda v: v >= OBSERVATION_RPS_AT_64,
            "{:.0%}",
        ),
        (
            f"no Belong worker above {WORKER_RSS_MB:g} MB resident (peak)",
            peak,
            lambda v: v <= WORKER_RSS_MB and len(belong_workers) == opts.workers,
            "{:.0f} MB",
        ),
    ]
    errors = [f"{labels[k]} @{c}" for (k, c), r in results.items() if r.non_2xx or r.socket_errors]
    lines += ["", "Targets:", ""]
    passed = True
    for text, value, ok, form in targets:
        good = bool(ok(value)) and not math.isnan(value)
        passed &= good
        lines.append(f"- {'PASS' if good else 'FAIL'}: {text} (measured {form.format(value)})")
    if errors:
        passed = False
        lines.append(f"- FAIL: error answers or socket errors in: {', '.join(errors)}")
    print("\n".join(lines), flush=True)
    return passed


def bench(opts: Options) -> bool:
    check_loopback(opts.admin_url)
    wrk = ensure_wrk()
    log(f"wrk: {wrk}")
    work = Path(tempfile.mkdtemp(prefix="belong-bench-"))
    database_url = with_database(opts.admin_url, opts.database, "postgresql+asyncpg")
    plain_url = with_database(opts.admin_url, opts.database, "postgresql")
    metrics_dir = work / "metrics"
    metrics_dir.mkdir()
    env = belong_env(dict(os.environ), database_url, metrics_dir, opts.pool)
    patients = [f"bench-{i:04d}" for i in range(opts.patients)]
    results: dict[tuple[str, int], WrkResult] = {}
    memory: dict[str, list[tuple[int, float, float]]] = {}
    profile_dir = None
    if opts.profile:
        profile_dir = Path(tempfile.mkdtemp(prefix="belong-bench-profile-"))
        log(f"py-spy profiles go to {profile_dir}")
    log(f"database {opts.database} (work files in {work})")
    create_database(opts.admin_url, opts.database)
    try:
        run(belong("db", "upgrade"), env=env, timeout=120)
        run(belong("clinics", "create", "--name", CLINIC, "--if-missing"), env=env, timeout=60)
        from service.platform.credentials import SCOPES

        created = run(
            belong(
                "clients", "create", "--clinic", CLINIC, "--name", "bench",
                *[arg for scope in SCOPES for arg in ("--scope", scope)],
            ),
            env=env,
            timeout=60,
        )  # fmt: skip
        token = created.stdout.strip().splitlines()[-1].strip()

        def served(name: str, command: list[str], **extra_env: str) -> Server:
            """``command`` serving on a free loopback port with ``opts.workers`` workers."""
            port = free_port()
            return Server(
                name,
                [
                    *command, "--host", LOOPBACK, "--port", str(port),
                    "--workers", str(opts.workers),
                ],
                {**env, **extra_env},
                port,
                work / f"{name.split()[0]}.log",
                opts.workers,
            )  # fmt: skip

        seeding = served("belong (seeding)", belong("serve"))
        started = time.monotonic()
        with serving(seeding):
            log(f"seeding {len(patients)} patients x {len(HISTORY)} screenings through the API")
            asyncio.run(seed_patients(seeding.base_url, token, patients))
        log(f"  patients seeded in {time.monotonic() - started:.0f}s")

        started = time.monotonic()
        directory_file = work / "directory.hsds.json"
        directory_file.write_text(json.dumps(directory_services(opts.services)), encoding="utf-8")
        log(f"importing {opts.services} HSDS services (belong directory import)")
        run(
            belong("directory", "import", "--clinic", CLINIC, str(directory_file)),
            env=env,
            timeout=20 * 60,
        )
        log(f"  directory imported in {time.monotonic() - started:.0f}s")

        from ceiling_app import TABLE_SQL  # tests/perf, beside this file

        asyncio.run(_admin(plain_url, TABLE_SQL))
        lua = work / "lua"
        lua.mkdir()
        scripts = scenarios(token, patients, lua)
        labels = {key: s.label for key, s in scripts.items()}

        ceiling = served(
            "ceiling", [sys.executable, str(HERE / "ceiling_app.py")], CEILING_DSN=plain_url
        )
        with serving(ceiling):
            log("measuring the ceiling")
            vacuum(plain_url)
            measure(wrk, ceiling, scripts["ceiling"], opts, results)
            memory["ceiling"] = [(pid, *memory_mb(pid)) for pid in ceiling.workers()]

        server = served("belong", belong("serve"))
        with serving(server):
            log("seeding referrals (every other patient)")
            asyncio.run(seed_referrals(server.base_url, token, patients))
            prime_workers(server.base_url, token, patients, opts.workers)
            check_endpoints(server.base_url, token, patients[0])
            for key in ("ucla-3", "ucla-20", "referrals", "observations"):
                log(f"measuring {scripts[key].label}")
                vacuum(plain_url)
                measure(wrk, server, scripts[key], opts, results, profile_dir)
            memory["belong"] = [(pid, *memory_mb(pid)) for pid in server.workers()]

        # Last, so that Belong's scenarios run on the data they ran on before it was added.
        lean = served(
            "lean", [sys.executable, str(HERE / "lean_screening_app.py")], LEAN_CLINIC=CLINIC
        )
        with serving(lean):
            prime_workers(lean.base_url, token, patients, opts.workers)
            # Its pools filled, as Belong's were by the referrals' seeding.
            run_wrk(wrk, lean.base_url, scripts["lean"].script, CONNECTIONS[-1], 1.0)
            log(f"measuring {scripts['lean'].label}")
            vacuum(plain_url)
            measure(wrk, lean, scripts["lean"], opts, results, profile_dir)
            memory["lean"] = [(pid, *memory_mb(pid)) for pid in lean.workers()]
        return report(labels, results, memory, opts)
    finally:
        if opts.keep_db:
            log(f"keeping database {opts.database}")
        else:
            try:
                drop_database(opts.admin_url, opts.database)
            except Exception as exc:  # reported, not fatal at the end
                log(f"could not drop {opts.database}: {exc}")
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Belong load benchmark (see the module doc)")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up: a smoke test")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a loopback PostgreSQL server, as a superuser (env BENCH_POSTGRES_URL)",
    )
    parser.add_argument("--database", default="belong_bench")
    parser.add_argument("--keep-db", action="store_true", help="leave the database for a look")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record one Belong worker with py-spy (in the venv) during each 64-connection run",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="exit 0 even when a target is missed"
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=None,
        help="database connections per worker, for Belong and the ceiling alike "
        "(default: Belong's default)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
    opts = Options(
        duration=args.duration,
        warmup=args.warmup,
        patients=args.patients,
        services=args.services,
        workers=args.workers,
        admin_url=args.admin_url,
        database=args.database,
        keep_db=args.keep_db,
        profile=args.profile,
        pool=args.pool or default_pool_size(),
    )
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
    return 0 if passed or args.report_only else 1


if __name__ == "__main__":
    raise SystemExit(main())
