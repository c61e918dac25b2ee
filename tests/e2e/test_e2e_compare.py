"""`bankapp compare --quick` end to end: a real server, real Locust runs, a report.

A small matrix keeps it to about half a minute; every process the run starts
must be gone afterwards, after a normal run and after an interrupted one.
"""

import itertools
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


@pytest.mark.slow  # 26 s of load runs: the slow step
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
    check_series(rows)
    check_anomaly_groups(rows, json.loads((out / "anomalies.json").read_text()))
    page = (out / "report.html").read_text()
    for title in ("Deposits: cents lost so far", "Checkout: in flight (dashed: capacity) over time"):
        assert title in page.split("<figure>", 1)[1], title  # an SVG chart over time, after the table
    assert "Transfers: deadlocks so far" in page and "<h2>Anomalies by kind</h2>" in page


def rises(values: list) -> list[int]:
    return [after - before for before, after in itertools.pairwise(values) if after > before]


def check_series(rows: dict) -> None:
    """Each row read about once a second for its 3 s, every list as long as `t`, the last reading the row's end."""
    for key, row in rows.items():
        series = row["series"]
        assert {len(values) for values in series.values()} == {len(series["t"])}, key
        assert 4 <= len(series["t"]) <= 12 and series["t"] == sorted(series["t"]) and series["t"][0] < 0.5, key
        assert max(series["completed_per_s"]) > 0 and min(series["completed_per_s"]) >= 0, key
    unsafe, lock = rows[("deposit", "unsafe")]["series"], rows[("deposit", "lock")]["series"]
    assert unsafe["lost_cents"] == sorted(unsafe["lost_cents"]) and unsafe["lost_cents"][-1] > 0
    assert unsafe["lost_cents"][-1] == rows[("deposit", "unsafe")]["lost_updates"]  # /debug/races and /stats agree
    assert set(lock["lost_cents"]) == {0}
    checkout = rows[("checkout", "semaphore")]["series"]
    assert set(checkout["capacity"]) == {rows[("checkout", "semaphore")]["capacity"]}
    assert max(checkout["in_flight"]) > 0
    assert all(flying <= limit for flying, limit in zip(checkout["in_flight"], checkout["capacity"], strict=True))
    assert set(checkout["oversold"]) == {0}
    naive, ordered = rows[("transfer", "naive")]["series"], rows[("transfer", "ordered")]["series"]
    assert (
        naive["deadlocks"] == sorted(naive["deadlocks"])
        and naive["deadlocks"][-1] == rows[("transfer", "naive")]["deadlocks"]
    )
    assert set(ordered["deadlocks"]) == {0}
    for series in (naive, ordered):  # these policies conserve money: every audit that answered read the expected total
        read = [
            (total, expected)
            for total, expected in zip(series["audited_total"], series["expected_total"], strict=True)
            if total is not None
        ]
        assert read and all(total == expected for total, expected in read)
    assert ordered["audited_total"][-1] is not None


def check_anomaly_groups(rows: dict, groups: dict) -> None:
    """Lost updates and deadlocks, grouped: first <= worst <= last in time, counts and totals as the series say."""
    order = list(rows)
    assert set(groups) == {"lost-update", "deadlock"}
    for kind, found in groups.items():
        times = [(found[key]["row"], found[key]["t"]) for key in ("first", "worst", "last")]
        assert times == sorted(times), kind
        assert found["count"] >= 1
    lost = groups["lost-update"]
    unsafe = rows[("deposit", "unsafe")]
    assert lost["count"] == len(rises(unsafe["series"]["lost_cents"])) and lost["total"] == unsafe["lost_updates"]
    assert lost["first"]["guard"] == lost["last"]["guard"] == "unsafe"
    assert lost["worst"]["figure"] == max(rises(unsafe["series"]["lost_cents"]))
    deadlock = groups["deadlock"]
    naive = rows[("transfer", "naive")]
    assert deadlock["count"] == len(rises(naive["series"]["deadlocks"])) and deadlock["total"] == naive["deadlocks"]
    assert order[deadlock["first"]["row"]] == ("transfer", "naive")
    assert unsafe["anomaly_groups"]["lost-update"] == lost  # the row's own groups, in results.json
    assert rows[("deposit", "lock")]["anomaly_groups"] == {}


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
