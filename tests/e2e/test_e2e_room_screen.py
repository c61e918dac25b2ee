"""What a room reads on the shared screen: the lost-update example and Locust's summary, run for real.

`examples/lost_update.py` right after a wide race window used to run for
minutes and report the deposits acknowledged without a word about those
refused; Locust's `--only-summary` filed every deadlock victim as an error of
its own, hundreds of lines. Both are run here against a real server on a free
loopback port, for a few seconds each, and their output read as a trainee
would read it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bankapp.server.processes import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 120


def run(*command: str) -> str:
    """A command's stdout and stderr, from the repository root; killed by its process group if it hangs."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BANKAPP_")}
    child = subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = child.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise
    return output


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_lost_update_warns_of_a_long_run_and_counts_what_was_refused_and_why():
    # lesson 3's situation, scaled down: a wide window, and a lock the threads queue for past lock_timeout_ms
    with ServerProcess("--race-window-ms", "250", "--lock-timeout-ms", "250") as server:
        output = run(
            sys.executable, "examples/lost_update.py", "--url", server.url, "--threads", "4", "--deposits", "8"
        )
    lines = output.splitlines()
    rows = {line.split()[0]: index for index, line in enumerate(lines) if re.match(r"  (unsafe|lock) +acknowl", line)}
    assert set(rows) == {"unsafe", "lock"}, output
    warning = next(index for index, line in enumerate(lines) if "race_window_ms is 250" in line)
    assert warning < rows["unsafe"], "the warning comes before the run, not after it"
    estimate = int(re.search(r"takes about (\d+) s", lines[warning]).group(1))
    assert 4 <= estimate <= 8, lines[warning]  # 8 x 0.25 s under unsafe, 8 x (0.25 + 0.25) s under lock
    assert any("under lock the 4 threads queue" in line and "lock_timeout_ms (250)" in line for line in lines)
    assert any('{"race_window_ms": 1}' in line for line in lines[: warning + 4])

    lock = lines[rows["lock"]]
    acknowledged = int(re.search(r"acknowledged +(\d+)", lock).group(1))
    refused = re.fullmatch(
        r" +refused +(\d+) of 32: not acknowledged, so not in the counts above", lines[rows["lock"] + 1]
    )
    assert refused, output
    assert acknowledged + int(refused.group(1)) == 32  # every deposit sent is accounted for
    kinds = re.fullmatch(
        r" +(\d+) x 503 lock-timeout: could not acquire the lock guard of acc-00 within 250 ms", lines[rows["lock"] + 2]
    )
    assert kinds and kinds.group(1) == refused.group(1), output
    unsafe_next = lines[rows["unsafe"] + 1]
    assert not unsafe_next.strip().startswith("refused"), "unsafe waits for nobody: nothing refused"


def test_the_usual_run_prints_no_warning_and_no_refusals():
    with ServerProcess() as server:  # the default window, 1 ms
        output = run(sys.executable, "examples/lost_update.py", "--url", server.url, "--deposits", "10")
    assert "race_window_ms is" not in output and "refused" not in output, output


def test_locust_files_every_deadlock_victim_under_one_line_of_its_error_report():
    with ServerProcess("--transfer-policy", "naive", "--race-window-ms", "5") as server:
        output = run(
            str(Path(sys.executable).parent / "locust"),
            "-f",
            "loadtests/locustfile.py",
            "TransferUser",
            "--host",
            server.url,
            "--headless",
            "-u",
            "16",
            "-r",
            "16",
            "-t",
            "3s",
            "--only-summary",
        )
    report = output.split("Error report", 1)[1].split("bankapp verdict", 1)[0] if "Error report" in output else ""
    rows = [line for line in report.splitlines() if re.match(r"^\d+ +\S", line)]
    assert rows, output[-3000:]
    victims = [row for row in rows if "deadlock victim" in row]
    assert len(victims) == 1, "\n".join(rows)
    assert re.match(r"^(\d+) +POST transfer: deadlock victim: 409 deadlock: Deadlock victim *$", victims[0])
    assert int(victims[0].split()[0]) >= 2, "several victims, counted on one line"
    assert "ThreadPoolExecutor" not in output and "waits for acc-" not in output  # no per-request detail
