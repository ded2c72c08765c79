"""The clinician app benchmark's data (tests/perf/bench_app.py): its directory must import
whole, with something behind every filter it measures, and its patients' screenings and
referral steps must be ones the service accepts, or ``make bench`` stops with status 2."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

from service.directory.hsds import Parsed, parse
from service.instruments.loader import load_catalog
from service.instruments.scoring import score, validate
from service.referrals.model import Status, check
from tests.conftest import INSTRUMENTS_DIR

BENCH = Path(__file__).resolve().parents[1] / "perf" / "bench_app.py"
_spec = importlib.util.spec_from_file_location("bench_app", BENCH)
assert _spec is not None and _spec.loader is not None
bench_app = importlib.util.module_from_spec(_spec)
sys.modules["bench_app"] = bench_app  # its dataclasses look their module up
_spec.loader.exec_module(bench_app)

CATALOG = load_catalog(INSTRUMENTS_DIR)


def test_the_directory_imports_whole_with_every_filter_answered() -> None:
    services = bench_app.directory_services(400, seed=3)

    parsed = parse(services)

    rejected = [p for p in parsed if not isinstance(p, Parsed)]
    assert rejected == []
    details = [p.details for p in parsed if isinstance(p, Parsed)]
    assert {d.category.value for d in details} == set(bench_app.CATEGORIES)
    assert {m.value for d in details for m in d.modalities} == {"in-person", "online", "phone"}
    assert any(
        d.category.value == "support-group" and any(lang.startswith("es") for lang in d.languages)
        for d in details
    )
    assert all(d.location is not None for d in details if "in-person" in d.modalities)


def test_every_planned_screening_scores_and_some_are_positive() -> None:
    plans = bench_app.plans([f"bench-{i:04d}" for i in range(60)], seed=4)

    positive = Counter()
    for plan in plans:
        assert 4 <= len(plan.screenings) <= 6
        assert 1 <= len({s["instrument"] for s in plan.screenings}) <= 3
        for body in plan.screenings:
            instrument = CATALOG[body["instrument"]]
            result = score(instrument, validate(instrument, list(body["answers"].items())))
            assert result.total is not None, (body, result.total_reason)
            positive[bool(result.band and result.band.positive)] += 1
    assert positive[True] > 0.2 * positive.total()
    assert positive[False] > 0.2 * positive.total()


def test_every_referral_path_follows_the_state_machine() -> None:
    for status, steps in bench_app.REFERRAL_PATHS.items():
        current = Status.REQUESTED
        for step in steps:
            wanted = Status(step["status"])
            check(current, wanted)
            current = wanted
        assert current is Status(status)
    assert set(bench_app.REFERRAL_WEIGHTS) == {s.value for s in Status}
