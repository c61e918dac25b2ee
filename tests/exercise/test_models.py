"""Each exercise's model solution (shipped in `bankapp/exercise/models/`) passes its own judge, by every schedule."""

import pytest

from bankapp.exercise.catalog import EXERCISES
from tests.exercise.conftest import SOLUTIONS


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=[pytest.mark.slow] if name == "fair-lock" else []) for name in EXERCISES]
)  # fair-lock: 538 schedules, about 7 s: the slow step runs it
def test_the_model_solution_passes_every_schedule(judged, name):
    exercise = EXERCISES[name]
    assert exercise.model.is_file(), exercise.model
    stage = judged(name, exercise.model)
    assert stage["passed"], stage
    assert stage["complete"] and stage["counterexample"] is None and stage["error"] is None
    assert set(stage["outcomes"]) == {"ok"} and stage["schedules"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_model_solution_passes_the_larger_scenarios_too(judged, name):
    stage = judged(name, EXERCISES[name].model, slow=True)
    assert stage["passed"] and stage["complete"], stage


def test_the_models_live_where_the_load_stage_finds_them():
    assert [e.model.name for e in EXERCISES.values()] == [
        "deposit_guard.py",
        "reentrant_guard.py",
        "counting_semaphore.py",
        "transfer_order.py",
        "fair_lock.py",
        "admission.py",
    ]


def test_a_lock_made_at_import_is_swapped_for_a_controlled_one_and_passes(judged):
    """Made before the explorer's primitives are swapped in, it would block in the OS: it is replaced, fresh for
    every schedule."""
    stage = judged("deposit-guard", SOLUTIONS / "module_lock_guard.py")
    assert stage["passed"] and stage["complete"], stage
