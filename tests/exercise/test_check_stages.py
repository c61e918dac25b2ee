"""`bankapp exercise check` end to end: every schedule, then the trainee's code under real HTTP load against
the model solution in the same run, and the grade (never the code) posted to a room's scoreboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bankapp.cli import main
from bankapp.exercise.load import model_for

from ..live import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SOLUTIONS = Path(__file__).parent / "solutions"


@pytest.fixture(scope="module")
def room():
    with live_server() as running:
        yield running


@pytest.mark.slow  # about 6 s: the slow step runs it
def test_a_correct_guard_passes_both_stages_and_its_grade_lands_on_the_room_scoreboard(room, capsys):
    model = model_for("deposit-guard")
    assert model is not None
    argv = ["exercise", "check", "deposit-guard", str(model), "--json", "--load-seconds", "1"]
    assert main([*argv, "--room", room.url, "--name", "team-one"]) == 0
    grade = json.loads(capsys.readouterr().out)
    assert [stage["stage"] for stage in grade["stages"]] == ["schedules", "load"]
    load = grade["stages"][1]
    assert load["passed"] and load["anomalies"] == [] and load["throughput"] > 0
    assert load["speed_ratio"] is not None and load["speed_ratio"] > 0  # measured against the model, same run
    rows = [row for row in room.get("/scoreboard").json()["rows"] if row["team"] == "team-one"]
    assert len(rows) == 1
    latest = rows[0]["latest"]
    assert (rows[0]["exercise"], latest["passed"], latest["schedules"]) == ("deposit-guard", True, grade["schedules"])
    assert latest["speed_ratio"] == load["speed_ratio"]


def test_a_guard_failing_its_schedules_is_not_put_under_load_and_its_fail_is_posted(room, capsys):
    argv = ["exercise", "check", "deposit-guard", str(SOLUTIONS / "release_first_guard.py"), "--json"]
    assert main([*argv, "--room", room.url, "--name", "team-two"]) == 1
    grade = json.loads(capsys.readouterr().out)
    assert [stage["stage"] for stage in grade["stages"]] == ["schedules"]  # the load stage never started
    row = next(row for row in room.get("/scoreboard").json()["rows"] if row["team"] == "team-two")
    assert row["latest"]["passed"] is False and row["latest"]["speed_ratio"] is None


def test_a_room_that_refuses_the_grade_is_said_and_exit_2_the_grade_still_printed(room, capsys):
    argv = ["exercise", "check", "deposit-guard", str(SOLUTIONS / "release_first_guard.py"), "--no-load"]
    assert main([*argv, "--room", room.url, "--name", "Not A Team"]) == 2
    captured = capsys.readouterr()
    assert "deposit-guard: FAIL" in captured.out
    assert "the grade was not posted" in captured.err and "team" in captured.err


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--room", "http://127.0.0.1:9"], "--room URL and --name TEAM go together"),
        (["--load-seconds", "0"], "--load-seconds 0"),
    ],
)
def test_bad_stage_options_are_usage_errors(extra, said, capsys):
    model = str(model_for("deposit-guard"))
    assert main(["exercise", "check", "deposit-guard", model, *extra]) == 2
    assert said in capsys.readouterr().err
