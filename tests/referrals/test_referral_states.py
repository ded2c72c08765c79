"""The referral state machine: every allowed step, every forbidden one, the final states.

The expected machine is written out here from DESIGN.md section 7 and the issue
(requested -> accepted | rejected | cancelled; accepted -> in-progress; in-progress ->
completed | failed, with on-hold and back, and cancelling while accepted or on hold),
not read from ``NEXT``. The same steps through the API are in tests/referrals/test_referrals.py.
"""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from service.referrals.model import (
    NEEDS_REASON,
    NEXT,
    Status,
    TransitionError,
    amends_outcome,
    check,
    is_final,
)

R, A, J, X = Status.REQUESTED, Status.ACCEPTED, Status.REJECTED, Status.CANCELLED
P, H, C, F = Status.IN_PROGRESS, Status.ON_HOLD, Status.COMPLETED, Status.FAILED

ALLOWED: dict[Status, set[Status]] = {
    R: {A, J, X},
    A: {P, X},
    P: {C, F, H},
    H: {P, X},
    J: set(),
    X: set(),
    C: set(),
    F: set(),
}
FINAL = {J, X, C, F}
ALL_STEPS = list(itertools.product(Status, Status))
ALLOWED_STEPS = [(a, b) for a, b in ALL_STEPS if b in ALLOWED[a]]
FORBIDDEN_STEPS = [(a, b) for a, b in ALL_STEPS if b not in ALLOWED[a]]


def step_id(step: tuple[Status, Status]) -> str:
    return f"{step[0].value}->{step[1].value}"


def test_the_machine_is_the_documented_one() -> None:
    assert {s: set(n) for s, n in NEXT.items()} == ALLOWED
    assert set(NEXT) == set(Status)


@pytest.mark.parametrize("step", ALLOWED_STEPS, ids=step_id)
def test_every_allowed_step_passes(step: tuple[Status, Status]) -> None:
    current, wanted = step
    check(current, wanted)  # no exception


@pytest.mark.parametrize("step", FORBIDDEN_STEPS, ids=step_id)
def test_every_forbidden_step_raises_naming_the_allowed_next_states(
    step: tuple[Status, Status],
) -> None:
    current, wanted = step

    with pytest.raises(TransitionError) as raised:
        check(current, wanted)

    error = raised.value
    assert (error.current, error.wanted) == (current, wanted)
    assert error.allowed == sorted(s.value for s in ALLOWED[current])
    message = str(error)
    assert current.value in message and wanted.value in message
    if ALLOWED[current]:
        for allowed in ALLOWED[current]:
            assert allowed.value in message
    else:
        assert "final" in message


def test_there_are_sixty_four_steps_ten_of_them_allowed() -> None:
    assert len(ALL_STEPS) == 64
    assert len(ALLOWED_STEPS) == 10
    assert len(FORBIDDEN_STEPS) == 54


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_final_states(status: Status) -> None:
    assert is_final(status) is (status in FINAL)
    if status in FINAL:
        for wanted in Status:
            with pytest.raises(TransitionError, match="is final"):
                check(status, wanted)


def test_no_status_may_stay_where_it_is() -> None:
    for status in Status:
        with pytest.raises(TransitionError):
            check(status, status)


def test_steps_that_must_say_why() -> None:
    assert frozenset({J, X, F, H}) == NEEDS_REASON


@pytest.mark.parametrize("current", list(Status), ids=str)
def test_only_a_completed_referral_may_have_its_outcome_added_later(current: Status) -> None:
    """Completed stays completed: an outcome sent with no status, or with completed again,
    only adds or changes the outcome; anything else is a status step."""
    for wanted in [None, *Status]:
        assert amends_outcome(current, wanted) is (current is C and wanted in (None, C)), wanted


def test_every_status_is_reachable_and_every_referral_can_finish() -> None:
    reached = {R}
    queue = deque([R])
    while queue:
        for nxt in NEXT[queue.popleft()]:
            if nxt not in reached:
                reached.add(nxt)
                queue.append(nxt)
    assert reached == set(Status)

    def can_finish(status: Status, seen: frozenset[Status] = frozenset()) -> bool:
        if is_final(status):
            return True
        return any(can_finish(n, seen | {status}) for n in NEXT[status] if n not in seen)

    assert all(can_finish(s) for s in Status)


def test_nothing_skips_acceptance() -> None:
    """A referral is never in progress, on hold, completed or failed without being accepted."""
    paths = [[R]]
    finished = []
    while paths:
        path = paths.pop()
        if is_final(path[-1]) or len(path) > 8:
            finished.append(path)
            continue
        paths.extend([*path, n] for n in NEXT[path[-1]])
    for path in finished:
        for late in (P, H, C, F):
            if late in path:
                assert A in path[: path.index(late)], path
