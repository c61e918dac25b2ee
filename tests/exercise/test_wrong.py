"""Known-wrong solutions, each judged failing with the outcome its mistake makes, and the schedule that shows it."""

import pytest

from bankapp.exercise.catalog import EXERCISES
from tests.exercise.conftest import SOLUTIONS

#: (exercise, file, outcome, what the failure says: in the error's message or a finding)
WRONG = [
    ("deposit-guard", "release_first_guard.py", "lost-update", "the balance is 120, not 130"),
    ("deposit-guard", "semaphore_of_two.py", "lost-update", "a write from a stale read erased a deposit"),
    ("reentrant-guard", "forgetful_reentrant.py", "error", "RuntimeError: release unlocked lock"),
    ("counting-semaphore", "forgetful_semaphore.py", "deadlock", "b waits for the Condition"),
    ("counting-semaphore", "if_not_while_semaphore.py", "over-capacity", "more than 1 places could be taken"),
    ("transfer-order", "lock_order_as_given.py", "deadlock", "a waits for the Lock #2 held by b"),
    ("fair-lock", "barging_fair_lock.py", "overtaken", "a2 got the guard before b1, which was already waiting"),
    ("admission", "slow_admission.py", "slow-rejection", "told no 1100 ms after it asked"),
]


@pytest.mark.parametrize(
    ("exercise", "file", "outcome", "says"),
    [pytest.param(*w, marks=[pytest.mark.slow] if w[0] == "fair-lock" else []) for w in WRONG],  # about 6 s
    ids=[w[1] for w in WRONG],
)
def test_a_wrong_solution_fails_with_its_outcome(judged, exercise, file, outcome, says):
    stage = judged(exercise, SOLUTIONS / file)
    assert not stage["passed"] and stage["complete"]
    example = stage["counterexample"]
    assert example["outcome"] == outcome, example
    assert stage["outcomes"][outcome] > 0
    assert example["schedule"].split() == [s["step"] for s in example["steps"]]
    assert all(s["does"] for s in example["steps"])  # what each thread did and saw, at every step
    said = " ".join(example["findings"]) + (stage["error"]["message"] if stage["error"] else "")
    assert says in said, said


def test_a_plain_flag_guard_is_preempted_between_its_check_and_its_set_not_passed(judged):
    """`while self.held: pass; self.held = True`: its lines are steps, so both threads pass the check, and the
    one that spins is stopped at its line rather than looping for ever."""
    stage = judged("deposit-guard", SOLUTIONS / "flag_guard.py")
    assert not stage["passed"] and stage["complete"]
    assert stage["outcomes"]["lost-update"] > 0 and stage["outcomes"]["busy-wait"] > 0
    assert stage["error"]["kind"] == "busy-wait" and stage["error"]["line"] == 9
    steps = [s["step"] for s in stage["counterexample"]["steps"]]
    assert "a.line9" in steps and "b.line10" in steps


def test_a_plain_lock_is_a_right_deposit_guard_and_a_wrong_reentrant_one(judged):
    stage = judged("reentrant-guard", EXERCISES["deposit-guard"].model)
    assert not stage["passed"] and stage["counterexample"]["outcome"] == "self-deadlock"
    assert "a waits for the Lock #1 held by a" in stage["counterexample"]["findings"][0]
