"""Benchmark: matching against a large directory.

Builds a seeded random directory (10,000 services by default), times ``prepare()`` (done
once per clinic and cached until the directory changes), then times ``match()`` for
random patients and prints p50 / p95 / p99 latency and matches per second. The target is
p95 < 20 ms per match; the exit code is 1 when it is missed.

Run from the repository root (not collected by pytest):

    .venv/bin/python tests/perf/bench_matching.py
    .venv/bin/python tests/perf/bench_matching.py --services 50000 --patients 500 --explain
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import msgspec

from service.directory.model import Category, DirectoryService
from service.instruments.model import Severity, Signal
from service.matching.model import EARTH_RADIUS_KM, match, prepare
from service.matching.needs import Need, Needs
from service.patients.model import AgeBand, Modality, PainCondition, PatientProfile

TARGET_P95_MS = 20.0
CENTER = (51.5, -0.12)
LANGUAGES = ["en", "en", "en", "es", "es-MX", "pl", "ur", "pa", "fr", "ar", "zh"]
CONDITIONS = [c.value for c in PainCondition if c is not PainCondition.OTHER]


def point(rng: random.Random, max_km: float) -> dict[str, float]:
    """A point up to ``max_km`` from CENTER (uniform over the disc)."""
    bearing = math.radians(rng.uniform(0, 360))
    d = max_km * math.sqrt(rng.random()) / EARTH_RADIUS_KM
    lat1, lon1 = map(math.radians, CENTER)
    lat2 = math.asin(
        math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(bearing)
    )
    lon2 = lon1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(lat1),
        math.cos(d) - math.sin(lat1) * math.sin(lat2),
    )
    return {"lat": round(math.degrees(lat2), 5), "lon": round(math.degrees(lon2), 5)}


def random_service(rng: random.Random, index: int) -> DirectoryService:
    modalities = rng.sample([m.value for m in Modality], rng.choice([1, 1, 1, 2, 2, 3]))
    body: dict[str, Any] = {
        "id": f"svc-{index:06d}",
        "name": f"Service {rng.randrange(100_000):05d}",
        "organization": f"Org {rng.randrange(500)}",
        "category": rng.choice([c.value for c in Category]),
        "modalities": modalities,
        "conditions": rng.sample(CONDITIONS, rng.choice([0, 0, 0, 1, 1, 2])),
        "languages": sorted(set(rng.sample(LANGUAGES, rng.choice([1, 1, 2, 3])))),
        "accepting_referrals": rng.random() > 0.1,
    }
    if rng.random() < 0.2:
        body["capacity"] = rng.randrange(0, 12)
    if "in-person" in modalities or rng.random() < 0.2:
        body["location"] = point(rng, 200)
        if "in-person" in modalities:
            body["catchment_km"] = rng.choice([5, 8, 10, 15, 20, 30, 40])
    if rng.random() < 0.2:
        body["min_age"] = rng.choice([16, 18, 18, 50, 65])
    if rng.random() < 0.1:
        body["max_age"] = rng.choice([25, 30, 120])
        body["min_age"] = min(body.get("min_age", 0), body["max_age"])
    return msgspec.convert(body, DirectoryService)


def random_patient(rng: random.Random) -> tuple[Needs, PatientProfile]:
    signals = rng.sample(list(Signal), rng.choice([1, 1, 2, 3]))
    severities = [Severity.MILD, Severity.MODERATE, Severity.MODERATE, Severity.SEVERE]
    needs = tuple(
        Need(
            signal=s,
            severity=rng.choice(severities),
            screening_id=f"scr-{rng.randrange(10**9)}",
            instrument="ucla-3",
            instrument_title="UCLA-3",
            completed_at=datetime(2024, 3, 1, tzinfo=UTC),
            band_label="Lonely",
        )
        for s in signals
    )
    profile: dict[str, Any] = {
        "pain_conditions": rng.sample(CONDITIONS, rng.choice([0, 1, 1, 2])),
        "languages": rng.sample(LANGUAGES[2:], rng.choice([0, 1, 1, 2])),
        "preferred_modalities": rng.sample([m.value for m in Modality], rng.choice([0, 1, 2])),
    }
    if rng.random() < 0.8:
        profile["location"] = point(rng, 150)
    if rng.random() < 0.5:
        profile["max_travel_km"] = rng.choice([5, 10, 20, 50])
    if rng.random() < 0.7:
        profile["age_band"] = rng.choice([b.value for b in AgeBand])
    return Needs(needs, rng.random() < 0.3), msgspec.convert(profile, PatientProfile)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter_ns()
    result = function(*args, **kwargs)
    return (time.perf_counter_ns() - start) / 1e6, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20240301)
    parser.add_argument("--limit", type=int, default=10, help="recommendations per match")
    parser.add_argument(
        "--explain", action="store_true", help="also time explain_excluded=True (explain=true)"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)

    build_ms, services = timed(lambda: [random_service(rng, i) for i in range(args.services)])
    patients = [random_patient(rng) for _ in range(args.patients)]
    prepare_runs = [timed(prepare, services)[0] for _ in range(5)]
    candidates = prepare(services)

    for needs, profile in patients[:5]:  # warm-up
        match(needs, profile, candidates, limit=args.limit)
    gc.collect()
    gc.disable()
    try:
        latencies = []
        recommended = []
        wall = time.perf_counter()
        for needs, profile in patients:
            ms, result = timed(match, needs, profile, candidates, limit=args.limit)
            latencies.append(ms)
            recommended.append(len(result.recommendations))
        wall = time.perf_counter() - wall
        explained: list[float] = []
        if args.explain:
            for needs, profile in patients:
                ms, _ = timed(
                    match, needs, profile, candidates, limit=args.limit, explain_excluded=True
                )
                explained.append(ms)
    finally:
        gc.enable()

    print(f"python {sys.version.split()[0]}, seed {args.seed}")
    print(f"directory: {args.services} services built in {build_ms:.0f} ms")
    print(
        f"prepare(): median {statistics.median(prepare_runs):.1f} ms, "
        f"min {min(prepare_runs):.1f} ms over {len(prepare_runs)} runs "
        f"({statistics.median(prepare_runs) * 1000 / args.services:.2f} us per service)"
    )
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    print(
        f"match(): {args.patients} patients, limit {args.limit}, "
        f"{statistics.mean(recommended):.1f} recommendations on average"
    )
    print(
        f"  p50 {p50:.2f} ms  p95 {p95:.2f} ms  p99 {p99:.2f} ms  max {max(latencies):.2f} ms  "
        f"mean {statistics.mean(latencies):.2f} ms"
    )
    print(
        f"  {args.patients / wall:.0f} matches/s ({args.services * args.patients / wall:,.0f} "
        "service assessments/s)"
    )
    if explained:
        e50, e95, e99 = (percentile(explained, p) for p in (50, 95, 99))
        print(f"match(explain_excluded=True): p50 {e50:.2f} ms  p95 {e95:.2f} ms  p99 {e99:.2f} ms")
    ok = p95 < TARGET_P95_MS
    print(f"target p95 < {TARGET_P95_MS:g} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
