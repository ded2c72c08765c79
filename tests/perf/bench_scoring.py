"""Benchmark: the scoring engine, scorings per second on one core for each instrument.

Loads every definition under ``schemas/instruments/``, draws seeded random answer sets for
each (every item answered with one of its scored options, and, where the instrument's
missing-item rule allows it, one set in four with the most items it tolerates left
unanswered), and times
what the API runs for every submission: ``validate`` (each answer against the definition)
then ``score`` (reverse keying, total, subscales, bands). The process is pinned to one CPU
where the system allows it, so the figure is per core.

Run from the repository root (not collected by pytest; ``make bench`` runs it):

    .venv/bin/python tests/perf/bench_scoring.py
    .venv/bin/python tests/perf/bench_scoring.py --sets 2000 --seconds 1.0

Exit status 0, or 2 when an answer set fails to score (a definition or engine fault).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from service.instruments.loader import load_catalog
from service.instruments.model import Instrument
from service.instruments.scoring import score, validate

INSTRUMENTS_DIR = Path(__file__).resolve().parents[2] / "schemas" / "instruments"


def answer_sets(
    instrument: Instrument, count: int, rng: random.Random
) -> list[list[tuple[str, int | None]]]:
    """(linkId, value) pairs as the API passes them; None leaves an item unanswered."""
    link_ids = instrument.link_ids
    tolerated = instrument.definition.scoring.missing.max_missing
    scored = {  # a recorded refusal counts as a missing item: left to the missing sets
        link: [value for value, option in instrument.options[link].items() if not option.declined]
        for link in link_ids
    }
    sets = []
    for index in range(count):
        pairs: list[tuple[str, int | None]] = [
            (link, rng.choice(scored[link])) for link in link_ids
        ]
        if tolerated and index % 4 == 3:
            for position in rng.sample(range(len(pairs)), tolerated):
                pairs[position] = (pairs[position][0], None)
        sets.append(pairs)
    return sets


def scorings_per_second(
    instrument: Instrument, sets: list[list[tuple[str, int | None]]], seconds: float
) -> float:
    """Whole passes over ``sets`` until ``seconds`` have gone by; the best pass counts."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        for pairs in sets:
            score(instrument, validate(instrument, pairs))
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() >= deadline:
            return len(sets) / best


def pin_to_one_cpu() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=1000, help="answer sets per instrument")
    parser.add_argument(
        "--seconds", type=float, default=0.5, help="timing per instrument (best pass counts)"
    )
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    catalog = load_catalog(INSTRUMENTS_DIR)
    pinned = pin_to_one_cpu()

    rows = []
    for instrument in catalog.values():
        sets = answer_sets(instrument, args.sets, rng)
        for pairs in sets:  # every set must score, or the figure means nothing
            result = score(instrument, validate(instrument, pairs))
            if result.total is None:
                print(
                    f"bench: {instrument.id}: no total for {pairs}: {result.total_reason}",
                    file=sys.stderr,
                )
                return 2
        gc.collect()
        gc.freeze()  # the answer sets live through the timing; keep them out of full passes
        rate = scorings_per_second(instrument, sets, args.seconds)
        rows.append((instrument.id, len(instrument.link_ids), rate))

    print(f"python {platform.python_version()}, seed {args.seed}, {pinned}")
    print(f"{args.sets} answer sets per instrument; validate + score, best pass of several\n")
    print("| instrument | items | scorings/s (one core) | µs per scoring |")
    print("|---|---:|---:|---:|")
    for instrument_id, items, rate in rows:
        print(f"| {instrument_id} | {items} | {rate:,.0f} | {1e6 / rate:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
