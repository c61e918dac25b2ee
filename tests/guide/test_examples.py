"""The lab guide's pure-threading examples run, exit 0 and print what the guide quotes.

Every `examples/*.py` that needs no server is run as a subprocess with a
timeout; a new example must be added to `EXPECTED` (or to `NEEDS_SERVER`),
so the guide cannot drift from the code without a test failing.
"""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: examples that drive a running bankapp over HTTP (covered by the e2e tests)
NEEDS_SERVER = {"lost_update.py", "checkout_burst.py"}
#: examples that step sessions on the bank's PostgreSQL tables (run by the lab guide's test, lessons 15 and 16)
NEEDS_SERVER |= {"isolation_levels.py"}
NEEDS_SERVER |= {"adaptive_limit.py"}  # lesson 18

EXPECTED = {
    "thread_runs_once.py": [
        "before start: alive=False ident=None",
        "start() while running -> RuntimeError: threads can only be started once",
        "after join:   alive=False runs=['worker-1']",
        "start() after join    -> RuntimeError: threads can only be started once",
        "a new Thread ran it again: runs=['worker-1', 'worker-2']",
    ],
    "release_unheld.py": [
        "Lock.release() when unlocked -> RuntimeError: release unlocked lock",
        "RLock.release() by another thread -> RuntimeError: cannot release un-acquired lock",
        "Lock.release() by another thread -> no error",
        "  the main thread took it, yet now locked=False: a plain Lock has no owner",
        "bankapp lock guard released by another thread -> RuntimeError: "
        "lock guard 'acc-00': released by a thread that does not hold it",
        "bankapp lock guard released twice -> RuntimeError: "
        "lock guard 'acc-00': released by a thread that does not hold it",
    ],
    "acquire_timeout.py": [
        "acquire(blocking=False) while held -> False",
        "acquire(timeout=0.2) while held    -> False, having waited at least 0.2 s: True",
        "acquire(timeout=0.2) once released -> True",
    ],
    "semaphore_counter.py": [
        "BoundedSemaphore(3): value 3",
        "acquire #3: value 0",
        "acquire(timeout=0.1) at 0 -> False",
        "3 threads were inside together; value back to 3",
        "BoundedSemaphore over-release -> ValueError: Semaphore released too many times",
        "Semaphore(3) over-release -> no error, value 4",
    ],
}


def test_every_example_is_known():
    found = {path.name for path in EXAMPLES.glob("*.py")}
    assert found == set(EXPECTED) | NEEDS_SERVER, "add the new example to EXPECTED or NEEDS_SERVER"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_the_lesson(name):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=30, cwd=EXAMPLES.parent
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    for expected in EXPECTED[name]:
        assert expected in lines, f"{name} no longer prints {expected!r}:\n{result.stdout}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_says_how_to_run_it(name):
    source = (EXAMPLES / name).read_text()
    assert f"python examples/{name}" in source.split('"""')[1], "the docstring shows the command"


@pytest.mark.e2e
@pytest.mark.slow  # over 6 s: the slow step runs it
def test_the_lost_update_example_starts_its_own_server_and_shows_the_race_and_the_fix():
    """docs/races.md's race by hand, as a user runs it: a round long enough to outlast
    gunicorn's 2 s keep-alive on an idle connection (which once broke it)."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "lost_update.py"), "--serve", "--threads", "16", "--deposits", "150"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith("  ")}
    assert rows["unsafe"][2] == "2400" and int(rows["unsafe"][7]) > 0
    assert rows["lock"][2] == "2400" and rows["lock"][7] == "0"
