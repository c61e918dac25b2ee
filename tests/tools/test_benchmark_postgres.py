"""The postgres benchmarks run end to end (one short round, the numbers not judged), so they cannot rot unseen.

`postgres_deposits.py` starts servers, wrk and pgbench and makes a database
of its own, which it must drop; `deposit_profile.py --store postgres` makes
one per app and counts each deposit's statements and round trips.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from ..pg import ADMIN_URL

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def databases_of(pid: int) -> set[str]:
    """The databases a benchmark run of process `pid` made and left (its names carry its pid): another run on
    the same server meanwhile does not count."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bankapp\\_%'").fetchall()
    return {name for (name,) in rows if name.startswith((f"bankapp_bench_{pid}_", f"bankapp_profile_{pid}_"))}


def run(*command: str, timeout: float) -> subprocess.CompletedProcess:
    """The benchmark's result, with its pid as `args` (whose databases `databases_of` finds)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BANKAPP_")}
    with subprocess.Popen(
        [sys.executable, *command], cwd=BENCHMARKS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return subprocess.CompletedProcess(process.pid, process.returncode, stdout, stderr)


@pytest.mark.skipif(not (shutil.which("wrk") and shutil.which("pgbench")), reason="needs wrk and pgbench")
def test_postgres_deposits_measures_every_row_and_drops_its_database(databases, tmp_path):
    result = run(
        "postgres_deposits.py", "--rounds", "1", "--duration", "1", "--workers", "1", "--admin-url", ADMIN_URL,
        "--json", str(tmp_path / "rows.json"), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 interleaved rounds of 1 s per row" in result.stdout and "the run took" in result.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {(row["code"], row["store"], row["guard"]) for row in rows} == {
        ("now", "memory", "lock"),
        ("now", "postgres", "atomic-update"),
        ("now", "postgres", "row-lock"),
        ("hand-written", "memory", "lock"),  # minimal_deposit.py
        ("hand-written", "postgres", "UPDATE"),  # minimal_postgres_deposit.py, on the benchmark's database
    }
    assert "hand-written Flask deposits: one UPDATE through psycopg's pool" in result.stdout
    # every row served; a refusal or two (a 2 s lock timeout when a neighbour starves the machine) is the
    # server's own answer, not the benchmark's fault: what is judged is that errors stay rare
    assert all(row["deposits_per_s"] > 0 and row["non_2xx"] <= 1 + row["deposits_per_s"] / 100 for row in rows), [
        (row["store"], row["guard"], row["deposits_per_s"], row["non_2xx"]) for row in rows
    ]
    assert databases_of(result.args) == set()


def test_deposit_profile_counts_the_round_trips_of_a_postgres_deposit(databases):
    result = run("deposit_profile.py", "--store", "postgres", "--runs", "2", "--requests", "20", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    counted = {
        line[:40].strip(): line[40:].split() for line in result.stdout.splitlines() if line.startswith("postgres ")
    }
    # CPU us, vs memory, statements, round trips, wall ms: the UPDATE, which checks the settings' version;
    # row-lock's BEGIN, locking read (checking it too), write and COMMIT (rounded: the worker's served-count
    # flush, once a second, may ride along in the trace)
    assert [round(float(n)) for n in counted["postgres atomic-update"][2:4]] == [1, 1], result.stdout
    assert [round(float(n)) for n in counted["postgres row-lock"][2:4]] == [4, 4], result.stdout
    assert databases_of(result.args) == set()


def test_explore_speed_on_the_database_prints_a_row_for_every_database_case(database_url):
    result = run("explore_speed.py", "--database-url", database_url, "--brute-limit", "30", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert {(row[0], row[1]) for row in rows} >= {("deposit", "row-lock"), ("transfer", "naive")}
    with psycopg.connect(database_url) as conn:  # every scratch schema dropped
        left = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bankapp_explore_%'").fetchone()
    assert left == (0,)
