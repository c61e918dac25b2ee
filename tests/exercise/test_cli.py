"""`bankapp exercise list | show | check`: the exercises in order, the task, the hint held back, the starter, the
grade's JSON, and the break-it levels won, lost and refused."""

import json

import pytest

from bankapp.cli import main
from bankapp.exercise.catalog import EXERCISES
from bankapp.exercise.command import STAGES
from bankapp.exercise.levels import LEVELS
from tests.exercise.conftest import SOLUTIONS

COURSE = ["deposit-guard", "reentrant-guard", "counting-semaphore", "transfer-order", "fair-lock", "admission"]


def test_list_shows_the_exercises_in_the_course_order_then_the_levels(capsys):
    assert main(["exercise", "list"]) == 0
    out = capsys.readouterr().out
    positions = [out.index(f". {name} ") for name in COURSE]
    assert positions == sorted(positions) and list(EXERCISES) == COURSE
    levels = out[out.index("Break-it levels") :]
    for name in ("unguarded-deposit", "semaphore-of-two", "check-then-act", "naive-transfers", "release-first-audit"):
        assert name in levels


def test_show_holds_the_hint_back_until_asked(capsys):
    exercise = EXERCISES["transfer-order"]
    assert main(["exercise", "show", "transfer-order"]) == 0
    out = capsys.readouterr().out
    assert "def lock_order(a: str, b: str) -> tuple[str, str]" in out and "Correct means:" in out
    assert exercise.hint not in out
    assert main(["exercise", "show", "transfer-order", "--hint"]) == 0
    assert exercise.hint in capsys.readouterr().out


def test_the_starter_is_written_once_and_judged_failing_at_its_todo(capsys, tmp_path):
    starter = tmp_path / "guard.py"
    assert main(["exercise", "show", "deposit-guard", "--starter", str(starter)]) == 0
    assert "TODO" in starter.read_text() and "def acquire(self, timeout=None) -> bool:" in starter.read_text()
    starter.write_text(starter.read_text() + "# my work\n")
    assert main(["exercise", "show", "deposit-guard", "--starter", str(starter)]) == 2
    assert "not overwritten" in capsys.readouterr().err and "# my work" in starter.read_text()
    assert main(["exercise", "show", "deposit-guard", "--starter", str(starter), "--force"]) == 0
    assert "# my work" not in starter.read_text()
    assert main(["exercise", "check", "deposit-guard", str(starter)]) == 1  # loads; its TODO raises
    out = capsys.readouterr().out
    assert "NotImplementedError" in out and "Hint: " + EXERCISES["deposit-guard"].hint in out


def test_check_json_has_the_grade_and_its_stages(capsys):
    assert main(["exercise", "check", "transfer-order", str(SOLUTIONS / "lock_order_as_given.py"), "--json"]) == 1
    grade = json.loads(capsys.readouterr().out)
    keys = {"exercise", "passed", "schedules", "equivalent", "complete", "outcomes", "counterexample", "error"}
    assert keys | {"stages"} <= set(grade)
    assert grade["exercise"] == "transfer-order" and grade["passed"] is False and grade["complete"] is True
    assert grade["counterexample"]["outcome"] == "deadlock" and grade["error"] is None
    assert [stage["stage"] for stage in grade["stages"]] == ["schedules"]  # a failed stage ends the check
    assert [stage.__name__ for stage in STAGES] == ["schedules_stage", "load_stage"]
    assert grade["schedules"] == grade["stages"][0]["schedules"] > 0


def test_a_failure_prints_the_schedule_step_by_step_and_the_hint(capsys):
    assert main(["exercise", "check", "deposit-guard", str(SOLUTIONS / "semaphore_of_two.py")]) == 1
    out = capsys.readouterr().out
    assert "deposit-guard: FAIL" in out and "The shortest failing schedule (deposit: lost-update):" in out
    assert "a reads balance: 100" in out and "b reads balance: 100" in out
    assert "Hint: " in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["exercise", "check", "no-such"], "no exercise or level 'no-such'"),
        (["exercise", "check", "deposit-guard"], "the file to judge is missing"),
        (["exercise", "check", "deposit-guard", "/no/such/file.py"], "no such file"),
        (["exercise", "check", "unguarded-deposit"], "give the schedule that breaks it"),
        (["exercise", "show", "no-such"], "no exercise or level"),
    ],
)
def test_usage_errors_are_exit_2_naming_what_is_wrong(capsys, argv, says):
    assert main(argv) == 2
    assert says in capsys.readouterr().err


WINS = {
    "unguarded-deposit": "a.read b.read a.write b.write",
    "semaphore-of-two": "a.read b.read a.write b.write",
    "check-then-act": "a.read b.read a.read a.write b.read b.write",
    "release-first-audit": "a.acquire a.read a.read a.write a.release b.acquire a.acquire b.read b.release a.read "
    "a.write a.read a.release",
    "self-locking-batch": "a.read a.read a.write a.read a.write",
}


@pytest.mark.parametrize("level", list(WINS))
def test_a_schedule_that_breaks_the_level_wins(capsys, level):
    assert main(["exercise", "check", level, "--schedule", WINS[level], "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["won"] and result["outcome"] == LEVELS[level].breaks


@pytest.mark.slow
def test_the_naive_transfers_deadlock_as_scheduled(capsys):
    schedule = (
        "a.acquire a.read a.read a.write b.acquire a.acquire b.read b.read b.write b.acquire a.read a.write a.read "
        "a.release b.read b.write b.read b.release"
    )
    assert main(["exercise", "check", "naive-transfers", "--schedule", schedule]) == 0
    assert "naive-transfers: BROKEN: deadlock, as asked" in capsys.readouterr().out


def test_a_schedule_that_does_not_break_it_says_what_happened_instead(capsys):
    assert main(["exercise", "check", "unguarded-deposit", "--schedule", "a.read a.write b.read b.write"]) == 1
    assert "unguarded-deposit: not broken: it ended ok, not lost-update" in capsys.readouterr().out


def test_a_malformed_schedule_is_exit_2_naming_the_step(capsys):
    assert main(["exercise", "check", "unguarded-deposit", "--schedule", "a.read b.jump"]) == 2
    assert "unguarded-deposit:" in capsys.readouterr().err
