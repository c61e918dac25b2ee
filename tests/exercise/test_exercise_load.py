"""A trainee's file plugged into a real server (`bankapp serve --exercise`) and judged under real HTTP load.

The solutions are this folder's own (`load_solutions/`): a guard on a
`threading.Lock` passes; one that lets everyone in loses updates over HTTP;
one that raises, or calls `sys.exit`, is a 503 naming its file and line
while the worker lives on. `serve --exercise` refuses a host that is not
loopback and a NAME or FILE it cannot use, plainly, with exit 2. Each load
run lasts seconds; every known-wrong solution of every exercise, judged
against a correct one, is `slow`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from bankapp import create_app
from bankapp.cli import main
from bankapp.exercise.load import judge_under_load, limit_cpu
from bankapp.lab.plugged import PlugError, Plugged
from bankapp.server import exercise
from bankapp.server.exercise import ADDRESS_SPACE_BYTES
from bankapp.server.processes import ServerProcess
from bankapp.settings import SettingsError, load

SOLUTIONS = Path(__file__).parent / "load_solutions"
#: Seconds of load per file in the default suite: enough for thousands of deposits on two hot accounts.
SHORT = 2.0


def serve(*flags: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`bankapp serve FLAGS` in a process of its own, which must refuse before it listens: its exit code and words."""
    command = [sys.executable, "-m", "bankapp", "serve", "--port", "0", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def refused_in_process(capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """`bankapp serve FLAGS` run here (it refuses before it listens or sets a limit): what exit 2 said."""
    assert main(["serve", "--port", "0", *flags]) == 2
    captured = capsys.readouterr()
    assert "ready at" not in captured.out
    return captured.err


def test_a_correct_guard_passes_under_load_and_the_server_ran_its_code():
    result = judge_under_load("deposit-guard", SOLUTIONS / "good_guard.py", seconds=SHORT, progress=None)
    assert result["passed"], result["anomalies"]
    assert result["anomalies"] == [] and result["verdict"]["ok"]
    assert result["throughput"] > 0 and result["completed"] > 0
    code = result["trainee_code"]
    assert code["file"] == str((SOLUTIONS / "good_guard.py").resolve())
    assert code["calls"] >= 2 * result["completed"] and code["failures"] == 0  # an acquire and a release each


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_a_guard_that_lets_everyone_in_shows_lost_updates_over_http_and_is_compared_with_the_model():
    lines: list[str] = []
    result = judge_under_load(
        "deposit-guard",
        SOLUTIONS / "no_guard.py",
        model=SOLUTIONS / "good_guard.py",
        seconds=SHORT,
        progress=lines.append,
    )
    assert not result["passed"]
    assert any("lost" in anomaly and "deposits" in anomaly for anomaly in result["anomalies"]), result["anomalies"]
    assert result["verdict"]["deposits"]["lost_updates"] > 0
    assert result["model_passed"] is True and result["model_anomalies"] == []
    assert result["model_throughput"] > 0
    assert result["speed_ratio"] == round(result["throughput"] / result["model_throughput"], 3)
    # long work says what it does as it goes: both servers, the seconds of load, the outcome
    assert any("trainee's no_guard.py" in line for line in lines)
    assert any("model's good_guard.py" in line for line in lines)
    assert any("under load, 1/2 s" in line for line in lines), lines
    assert lines[-1].startswith("exercise deposit-guard: under load failed")


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_trainee_code_that_raises_or_exits_is_a_problem_naming_its_line_and_the_worker_lives():
    raising = SOLUTIONS / "raising_guard.py"
    with ServerProcess("--exercise", f"deposit-guard={raising}", startup_timeout=60) as server:
        first = requests.post(server.url + "/accounts/acc-00/deposit", json={"amount": 5}, timeout=10)
        assert first.status_code == 503, first.text
        assert first.headers["Content-Type"] == "application/problem+json"
        problem = first.json()
        assert problem["type"] == "urn:bankapp:problem:exercise-code-failed"
        assert problem["file"] == str(raising.resolve()) and problem["line"] == 6
        assert "ZeroDivisionError: the trainee divided by zero" in problem["detail"]
        worker = first.headers["X-Served-By"].split("/")[0]
        # nothing was deposited, and the lab's own guards still serve: the worker is the same one
        assert requests.get(server.url + "/accounts/acc-00", timeout=10).json()["balance"] == 100_000
        switched = requests.patch(server.url + "/admin/config", json={"deposit_guard": "lock"}, timeout=10)
        assert switched.status_code == 200
        second = requests.post(server.url + "/accounts/acc-00/deposit", json={"amount": 5}, timeout=10)
        assert second.status_code == 200 and second.headers["X-Served-By"].split("/")[0] == worker
        stats = requests.get(server.url + "/stats", timeout=10).json()["exercise"]["deposit"]
        assert stats["failures"] == 1 and "raising_guard.py:6" in stats["last_failure"]
        # the limits: memory and processes set by serve itself, inherited by the worker; CPU set by the judge
        limit_cpu(server.pid, 77)
        for pid in (server.pid, int(worker)):
            limits = Path(f"/proc/{pid}/limits").read_text()
            assert re.search(rf"Max address space\s+{ADDRESS_SPACE_BYTES}\s", limits), limits
            assert re.search(r"Max processes\s+\d+\s", limits), limits
            assert re.search(r"Max cpu time\s+77\s+82\s", limits), limits
    exiting = SOLUTIONS / "exiting_guard.py"
    with ServerProcess("--exercise", f"deposit-guard={exiting}", startup_timeout=60) as server:
        answers = [
            requests.post(server.url + "/accounts/acc-01/deposit", json={"amount": 1}, timeout=10) for _ in range(3)
        ]
        assert [answer.status_code for answer in answers] == [503] * 3
        assert "SystemExit(3)" in answers[0].json()["detail"] and answers[0].json()["line"] == 8
        assert len({answer.headers["X-Served-By"].split("/")[0] for answer in answers}) == 1  # one worker, alive
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
        assert server.process.poll() is None


def test_the_http_api_never_loads_code_and_refuses_exercise_when_nothing_is_plugged(make_app):
    """No route takes a file; `exercise` without a plugged file is a 422 naming the setting, changing nothing."""
    client = make_app().test_client()
    refused = client.patch("/admin/config", json={"deposit_guard": "exercise"})
    assert refused.status_code == 422
    assert refused.json["errors"][0]["setting"] == "deposit_guard" and "--exercise" in refused.json["detail"]
    assert client.get("/admin/config").json["deposit_guard"] == "unsafe"
    assert client.patch("/admin/config", json={"exercise": "deposit-guard=/tmp/x.py"}).status_code == 422
    assert not [rule for rule in make_app().url_map.iter_rules() if "exercise" in rule.rule and "POST" in rule.methods]


def test_a_plugged_guard_serves_in_process_and_a_guard_answering_nonsense_is_refused(tmp_path):
    nonsense = tmp_path / "nonsense.py"
    nonsense.write_text(
        "class Guard:\n    def acquire(self, timeout=None):\n        pass\n\n    def release(self):\n        pass\n"
    )
    app = create_app({"deposit_guard": "exercise", "race_window_ms": 0}, Plugged({"deposit-guard": nonsense}))
    answer = app.test_client().post("/accounts/acc-00/deposit", json={"amount": 5})
    assert answer.status_code == 503 and "answered None, not True or False" in answer.json["detail"]
    good = create_app({"deposit_guard": "exercise"}, Plugged({"deposit-guard": SOLUTIONS / "good_guard.py"}))
    assert good.test_client().post("/accounts/acc-00/deposit", json={"amount": 5}).json["balance"] == 100_005


BAD_FILES = {
    "syntax": ("class Guard:\n    def acquire(self, timeout=None)\n        return True\n", "bad.py:2: syntax error"),
    "no name": ("class Lock:\n    pass\n", "defines no Guard"),
    "import raises": ("import nowhere_to_be_found\n", "bad.py:1: raised while loading: ModuleNotFoundError"),
    "signature": (
        "class Guard:\n    def acquire(self):\n        return True\n\n    def release(self):\n        pass\n",
        "the lab calls acquire(timeout=1.0)",
    ),
    "function": ("def Guard():\n    pass\n", "Guard is a function, not a class"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_file_that_cannot_be_plugged_in_is_refused_plainly_with_exit_2(tmp_path, capsys, case):
    source, words = BAD_FILES[case]
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    said = refused_in_process(capsys, "--exercise", f"deposit-guard={bad}")
    assert said.startswith("bankapp serve: ") and words in said and "Traceback" not in said
    with pytest.raises(PlugError) as raised:
        Plugged({"deposit-guard": bad})
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--host", "0.0.0.0", "--exercise", "deposit-guard=GOOD"), "--host 0.0.0.0 is not loopback"),
        (("--exercise", "no-such-exercise=GOOD"), "no exercise 'no-such-exercise'"),
        (("--exercise", "deposit-guard"), "write NAME=FILE"),
        (("--exercise", "deposit-guard=/no/such/file.py"), "no file '/no/such/file.py'"),
        (("--exercise", "deposit-guard=GOOD", "--exercise", "fair-lock=GOOD"), "both stand in for the deposit"),
        (("--deposit-guard", "exercise"), "deposit_guard: exercise runs a trainee's code, and none was plugged"),
    ],
    ids=["host", "name", "no-equals", "no-file", "two-guards", "not-plugged"],
)
def test_serve_exercise_refuses_a_host_beyond_loopback_and_a_bad_name_or_file_with_exit_2(capsys, flags, words):
    good = str(SOLUTIONS / "good_guard.py")
    said = refused_in_process(capsys, *(flag.replace("GOOD", good) for flag in flags))
    assert said.startswith("bankapp serve: ") and words in said and "Traceback" not in said, said


def test_the_bankapp_command_itself_exits_2_for_a_host_beyond_loopback():
    refused = serve("--host", "0.0.0.0", "--exercise", f"deposit-guard={SOLUTIONS / 'good_guard.py'}")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is not loopback" in refused.stderr and "Traceback" not in refused.stderr
    assert "ready at" not in refused.stdout


def test_exercise_chooses_the_trainees_part_unless_a_flag_chose_it_otherwise():
    good = f"deposit-guard={SOLUTIONS / 'good_guard.py'}"
    order = f"transfer-order={SOLUTIONS / 'sorted_order.py'}"
    assert exercise.chosen([good, order], {}) == {"deposit_guard": "exercise", "transfer_policy": "exercise"}
    assert exercise.chosen([good], {"deposit_guard": "lock"}) == {"deposit_guard": "lock"}  # loaded, waits for PATCH
    plugged = exercise.plug_in(load(exercise.chosen([good], {"deposit_guard": "lock"})), [good])
    app = create_app(load({"deposit_guard": "lock"}), plugged)
    client = app.test_client()
    assert client.patch("/admin/config", json={"deposit_guard": "exercise"}).status_code == 200
    assert client.post("/accounts/acc-00/deposit", json={"amount": 5}).json["balance"] == 100_005
    assert client.get("/stats").json["exercise"]["deposit"]["grants"] == 1
    refused = client.patch("/admin/config", json={"transfer_policy": "exercise"})  # nothing plugged for transfers
    assert refused.status_code == 422 and refused.json["errors"][0]["setting"] == "transfer_policy"


def test_exercise_is_refused_with_the_postgres_store_by_name():
    with pytest.raises(SettingsError, match="transfer_policy: exercise runs a trainee's code in one process"):
        load({"store": "postgres", "database_url": "postgresql://127.0.0.1/x", "transfer_policy": "exercise"})


def test_judging_a_file_the_server_refuses_is_a_plug_error_not_a_crash(tmp_path):
    missing = tmp_path / "guard.py"
    missing.write_text("class Lock:\n    pass\n")
    with pytest.raises(PlugError, match="defines no Guard"):
        judge_under_load("deposit-guard", missing, seconds=1, progress=None)
    with pytest.raises(PlugError, match="no exercise 'deposit'"):
        judge_under_load("deposit", missing, seconds=1, progress=None)


#: Every exercise: a known-wrong solution, what its verdict must say, and a correct one (the model of the run).
WRONG_AND_RIGHT = {
    "deposit-guard": ("flag_guard.py", "lost", "good_guard.py"),
    "fair-lock": ("lifo_guard.py", "not in arrival order", "fair_guard.py"),  # a stack: the newest waiter first
    "reentrant-guard": ("good_guard.py", "self-deadlocked", "good_reentrant.py"),
    "counting-semaphore": ("leaky_semaphore.py", "above the capacity of 4", "good_semaphore.py"),
    "admission": ("slow_admission.py", "rejections must be prompt", "good_admission.py"),
    "transfer-order": ("reversed_order.py", "deadlock victims", "sorted_order.py"),
}


@pytest.mark.slow
@pytest.mark.parametrize("exercise", WRONG_AND_RIGHT)
def test_every_exercise_fails_its_known_wrong_solution_and_passes_a_correct_one_under_load(exercise):
    wrong, words, right = WRONG_AND_RIGHT[exercise]
    result = judge_under_load(exercise, SOLUTIONS / wrong, model=SOLUTIONS / right, seconds=4, progress=None)
    assert not result["passed"] and any(words in anomaly for anomaly in result["anomalies"]), result["anomalies"]
    assert result["model_passed"], result["model_anomalies"]
    assert result["speed_ratio"] is not None


@pytest.mark.slow
def test_a_semaphore_that_loses_permits_is_caught_by_the_probe_after_the_load():
    result = judge_under_load("counting-semaphore", SOLUTIONS / "losing_semaphore.py", seconds=2, progress=None)
    assert not result["passed"]
    assert any("checkouts sent at once were admitted" in anomaly for anomaly in result["anomalies"]), result


@pytest.mark.slow
def test_a_guard_that_hangs_is_judged_in_bounded_time_and_named_a_hang():
    result = judge_under_load("deposit-guard", SOLUTIONS / "hanging_guard.py", seconds=2, progress=None)
    assert not result["passed"] and result["completed"] == 0
    assert any("had not returned when the load was over: a hang" in anomaly for anomaly in result["anomalies"])
    assert result["trainee_code"]["inside"] > 0


@pytest.mark.slow
def test_a_reentrant_guard_that_forgets_its_count_fails_under_load():
    result = judge_under_load("reentrant-guard", SOLUTIONS / "forgetful_reentrant.py", seconds=4, progress=None)
    assert not result["passed"], result
