"""The exercises' fixtures: the shipped solutions, and `judged(exercise, file)`, a check run as the command runs it
(a child process under limits)."""

from pathlib import Path

import pytest

from bankapp.exercise.catalog import EXERCISES
from bankapp.exercise.sandbox import Limits, judge_file

SOLUTIONS = Path(__file__).parent / "solutions"
#: Tight enough that a test of a runaway file ends soon, loose enough for a slow machine.
QUICK = Limits(cpu_s=60, wall_s=60.0)


@pytest.fixture
def judged():
    def judge(exercise: str, path: Path, slow: bool = False, limits: Limits = QUICK) -> dict:
        assert exercise in EXERCISES
        return judge_file(exercise, path, slow=slow, limits=limits)

    return judge
