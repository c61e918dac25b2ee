"""Each exercise's model solution (shipped in `bankapp/exercise/models/`) passes its own judge, by every schedule."""

import pytest

from bankapp.exercise.catalog import EXERCISES


@pytest.mark.parametrize("name", list(EXERCISES))
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
