"""The scoring micro-benchmark's answer sets (tests/perf/bench_scoring.py): every one of
every instrument must score a total, or ``make bench`` stops with status 2."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from service.instruments.loader import load_catalog
from service.instruments.scoring import score, validate
from tests.conftest import INSTRUMENTS_DIR

BENCH = Path(__file__).resolve().parents[1] / "perf" / "bench_scoring.py"
_spec = importlib.util.spec_from_file_location("bench_scoring", BENCH)
assert _spec is not None and _spec.loader is not None
bench_scoring = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_scoring)

CATALOG = load_catalog(INSTRUMENTS_DIR)


@pytest.mark.parametrize("instrument_id", sorted(CATALOG))
def test_every_benchmark_answer_set_scores_a_total(instrument_id: str) -> None:
    instrument = CATALOG[instrument_id]
    tolerated = instrument.definition.scoring.missing.max_missing

    sets = bench_scoring.answer_sets(instrument, 40, random.Random(7))

    assert len(sets) == 40
    for index, pairs in enumerate(sets):
        assert [link for link, _ in pairs] == list(instrument.link_ids)
        unanswered = sum(value is None for _, value in pairs)
        assert unanswered == (tolerated if tolerated and index % 4 == 3 else 0)
        result = score(instrument, validate(instrument, pairs))
        assert result.total is not None, (pairs, result.total_reason)


def test_the_rate_is_sets_over_the_best_pass() -> None:
    instrument = CATALOG["ucla-3"]
    sets = bench_scoring.answer_sets(instrument, 50, random.Random(1))

    rate = bench_scoring.scorings_per_second(instrument, sets, seconds=0.01)

    assert 1_000 < rate < 10_000_000
