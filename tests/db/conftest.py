"""What lived here, until every test imports it from its home: the helpers from
tests/helpers.py, and the ``storage`` and ``belong_cli`` fixtures from tests/conftest.py
(which serves them to every folder already)."""

from tests.conftest import belong_cli, storage
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
    "belong_cli",
    "new_patient_id",
    "seconds_until_refused",
    "storage",
    "ucla3",
]
