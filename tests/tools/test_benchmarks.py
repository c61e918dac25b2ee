"""Every benchmark in benchmarks/ runs end to end, one short round, so none can rot unseen (the numbers not judged).

Each test runs a script as a user would (`python benchmarks/x.py` with its
smallest durations and rounds) and checks that it finished and printed its
table. Those that measure CPU in one process (or sleep-bound
checkouts) run in the default suite; those that drive a server flat out with
wrk or Locust, or export and serve an older commit, are `slow` (.ci/run's
second step). The postgres benchmarks have theirs in test_benchmark_postgres.py.
`bench_server.py`, `minimal_deposit.py` and `locust_overhead_users.py` are
helpers the others import or serve: they run with them.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
needs_wrk = pytest.mark.skipif(not shutil.which("wrk"), reason="needs wrk")


def run(*command: str, timeout: float = 300) -> str:
    """Run a benchmark script from benchmarks/; its stdout, after checking it exited 0."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BANKAPP_")}
    result = subprocess.run(
        [sys.executable, *command], cwd=BENCHMARKS, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, f"{command[0]} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


def test_every_benchmark_script_has_a_smoke_run_here_or_in_the_postgres_one():
    helpers = {"bench_server.py", "minimal_deposit.py", "locust_overhead_users.py"}
    tested = (Path(__file__).read_text() + (Path(__file__).parent / "test_benchmark_postgres.py").read_text()).split()
    scripts = {path.name for path in BENCHMARKS.glob("*.py")} - helpers
    assert {name for name in scripts if not any(name in word for word in tested)} == set()


def test_deposit_profile_prints_the_cpu_of_each_app():
    out = run("deposit_profile.py", "--runs", "2", "--requests", "20")
    for app in ("bankapp", "bankapp, bare domain", "minimal"):
        assert any(line.startswith(f"{app} ") and "us of CPU per deposit" in line for line in out.splitlines()), out
    assert "minimal / bankapp" in out


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
def test_checkout_admission_prints_its_table_and_verdicts():
    out = run("checkout_admission.py", "--duration", "0.5", "--warmup", "0", "--clients", "12")
    assert "guard                  done/s" in out
    for guard in ("semaphore", "semaphore, no wait", "unsafe", "lock"):
        assert any(line.startswith(f"{guard} ") for line in out.splitlines()), out
    assert "rejection with admission_timeout_ms 0" in out


@pytest.mark.slow
@needs_wrk
def test_deposit_guards_measures_every_guard_against_the_minimal_deposit():
    out = run("deposit_guards.py", "--duration", "1", "--rounds", "1")
    for guard in ("unsafe", "lock", "rlock", "semaphore(1)", "semaphore(4)"):
        assert f"POST deposit  {guard}" in out, out
    assert "of the minimal Flask deposit in requests/s" in out


@pytest.mark.slow
@needs_wrk
def test_dashboard_polling_measures_deposits_beside_a_dashboard():
    out = run("dashboard_polling.py", "--pollers", "1", "--duration", "1", "--rounds", "1")
    assert "deposit under lock: 1 rounds of 1 s" in out and "polls that failed: 0" in out, out
    assert "server time under load: one poll" in out


@pytest.mark.slow
@needs_wrk
def test_forensics_cost_measures_with_and_without_forensics():
    out = run("forensics_cost.py", "--rounds", "1", "--duration", "1", "--lost-rounds", "1")
    assert "medians of 1 interleaved rounds of 1 s" in out, out
    assert "without forensics: median" in out and "with    forensics: median" in out


@pytest.mark.slow
def test_locust_overhead_runs_both_users_side_by_side():
    out = run("locust_overhead.py", "--duration", "2", "--rounds", "1", "--users-each", "2")
    assert "round 1: same run  minimal" in out and "target 0.8:" in out, out


def test_explore_speed_prints_a_row_for_every_case():
    out = run("explore_speed.py", "--brute-limit", "50")  # the brute-force side only where the search is tiny
    assert out.startswith("scenario  guard")
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert {(row[0], row[1]) for row in rows} >= {
        ("deposit", "unsafe"),
        ("transfer", "naive"),
        ("checkout", "semaphore"),
    }


@pytest.mark.parametrize("app", ["bankapp", "minimal"])
def test_worker_deposits_serves_deposits_through_each_apps_gunicorn_worker(app):
    """worker_deposits.py, as `deposit_instructions.py --through-worker` runs it under callgrind (here without):
    it checks each answer is a 200 with a balance on a connection kept alive, and exits 1 if not."""
    run("deposit_instructions.py", "--serve", app, "--requests", "5", "--through-worker")


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("valgrind"), reason="needs valgrind (callgrind counts the instructions)")
def test_deposit_instructions_counts_each_app_under_callgrind():
    out = run("deposit_instructions.py", "--requests", "20")
    assert "instructions per deposit (callgrind" in out
    for app in ("bankapp", "minimal"):
        assert any(
            line.startswith(f"{app} ") and line.split()[-1].replace(",", "").isdigit() for line in out.splitlines()
        )
    assert "minimal / bankapp:" in out


@pytest.mark.slow
def test_adaptive_admission_settles_and_compares_with_a_hand_tuned_semaphore():
    out = run("adaptive_admission.py", "--duration", "1")
    assert "settled" in out and "limits every 0.5 s" in out
    assert "adaptive / semaphore(8): completed" in out


def test_rooms_flood_measures_a_quiet_team_beside_a_flooding_one():
    out = run("rooms_flood.py", "--duration", "0.5", "--rounds", "1", "--rate", "100", "--senders", "8")
    assert "median p99 ratio, flooded / alone:" in out, out
    assert "flood's share:" in out and "refused 503" in out, out
