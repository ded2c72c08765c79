"""The helpers that lived here, re-exported from tests/helpers.py (their home now, with
the ``storage`` and ``belong_cli`` fixtures in tests/conftest.py) until every test imports
them from there."""

from tests.helpers import (
    PAST,
    PROBLEM_JSON,
    REFUSAL_SLACK_SECONDS,
    UCLA3_ANSWERS,
    BelongCli,
    CliRun,
    Storage,
    Stored,
    assert_problem,
    new_patient_id,
    seconds_until_refused,
    ucla3,
)

__all__ = [
    "PAST",
    "PROBLEM_JSON",
    "REFUSAL_SLACK_SECONDS",
    "UCLA3_ANSWERS",
    "BelongCli",
    "CliRun",
    "Storage",
    "Stored",
    "assert_problem",
    "new_patient_id",
    "seconds_until_refused",
    "ucla3",
]
