"""`bankapp compare --quick` end to end: a real server, real Locust runs, a report.

A small matrix keeps it to about half a minute; every process the run starts
must be gone afterwards, after a normal run and after an interrupted one.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROWS = "deposit:unsafe,deposit:lock,checkout:semaphore,transfer:naive,transfer:ordered"


def compare(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bankapp", "compare", "--quick", "--duration", "3", "--guards", ROWS, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: what it leaves behind is findable
    )


def group_members(pgid: int, out: Path) -> list[str]:
    """Live processes in the process group, or naming the report folder (Locust runs in a process group
    of its own, and names its files there); zombies are already gone."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if (group == pgid or str(out) in cmdline) and state != "Z":
            members.append(f"{entry.name}: {cmdline}")
    return members


def wait_until_gone(pgid: int, out: Path, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := group_members(pgid, out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_quick_compare_writes_a_report_whose_rows_show_the_lessons(tmp_path):
    out = tmp_path / "report"
    process = compare(out)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    assert wait_until_gone(process.pid, out) == []
    for name in ("results.json", "results.csv", "report.md", "report.html", "report.png"):
        assert (out / name).stat().st_size > 0, name
    rows = {(row["scenario"], row["guard"]): row for row in json.loads((out / "results.json").read_text())}
    assert set(rows) == {tuple(item.split(":")) for item in ROWS.split(",")}
    assert rows[("deposit", "unsafe")]["lost_updates"] > 0
    assert rows[("deposit", "unsafe")]["ok"] is False
    assert rows[("deposit", "lock")]["lost_updates"] == 0
    assert rows[("deposit", "lock")]["ok"] is True
    assert rows[("transfer", "naive")]["deadlocks"] > 0
    assert rows[("transfer", "ordered")]["deadlocks"] == 0
    checkout = rows[("checkout", "semaphore")]
    assert checkout["rejected"] > 0
    assert 0 < checkout["peak_in_flight"] <= checkout["capacity"]
    for row in rows.values():
        assert row["requests"] > 0 and row["rps"] > 0 and row["p50_ms"] <= row["p99_ms"]
    assert "vanished" in rows[("deposit", "unsafe")]["sentence"]
    # who erased whom, quoted from the server's /debug/races through the verdict
    unsafe = rows[("deposit", "unsafe")]
    assert unsafe["erasures"] > 0 and unsafe["race_example"].startswith("deposit ")
    assert f"For example, {unsafe['race_example']}" in unsafe["sentence"]
    assert rows[("deposit", "lock")]["erasures"] == 0 and rows[("deposit", "lock")]["race_example"] is None
    assert "report.html" in stdout


def test_an_interrupted_compare_leaves_no_process_behind(tmp_path):
    out = tmp_path / "report"
    process = compare(out)
    deadline = time.monotonic() + 60
    while not list((out / "raw").glob("deposit-*.log")) and time.monotonic() < deadline:
        time.sleep(0.2)  # wait until the server is up and a Locust run has started (server.log comes first)
    assert list((out / "raw").glob("deposit-*.log")), "no Locust run started"
    time.sleep(1)
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in stderr
    assert wait_until_gone(process.pid, out) == []


def test_an_interrupt_while_the_server_starts_leaves_no_process_behind(tmp_path):
    out = tmp_path / "report"
    process = compare(out)
    deadline = time.monotonic() + 60
    while not (out / "raw" / "server.log").exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # the server process is being started now
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert wait_until_gone(process.pid, out) == []


def test_compare_says_so_when_nothing_matches(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bankapp", "compare", "--guards", "mutex", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no configuration matches" in result.stderr
