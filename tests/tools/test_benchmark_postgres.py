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


def benchmark_databases(databases) -> set[str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bankapp\\_%'").fetchall()
    return {name for (name,) in rows if name.startswith(("bankapp_bench_", "bankapp_profile_"))}


def run(*command: str, timeout: float) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BANKAPP_")}
    return subprocess.run(
        [sys.executable, *command], cwd=BENCHMARKS, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.skipif(not (shutil.which("wrk") and shutil.which("pgbench")), reason="needs wrk and pgbench")
def test_postgres_deposits_measures_every_row_and_drops_its_database(databases, tmp_path):
    before = benchmark_databases(databases)
    result = run(
        "postgres_deposits.py", "--rounds", "1", "--duration", "1", "--workers", "1", "--admin-url", ADMIN_URL,
        "--json", str(tmp_path / "rows.json"), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 interleaved rounds of 1 s per row" in result.stdout and "the run took" in result.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {(row["store"], row["guard"]) for row in rows} == {
        ("memory", "lock"),
        ("postgres", "atomic-update"),
        ("postgres", "row-lock"),
    }
    assert all(row["deposits_per_s"] > 0 and row["non_2xx"] == 0 for row in rows), rows
    assert benchmark_databases(databases) == before


def test_deposit_profile_counts_the_round_trips_of_a_postgres_deposit(databases):
    before = benchmark_databases(databases)
    result = run("deposit_profile.py", "--store", "postgres", "--runs", "2", "--requests", "20", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    counted = {
        line[:40].strip(): line[40:].split() for line in result.stdout.splitlines() if line.startswith("postgres ")
    }
    # CPU us, vs memory, statements, round trips, wall ms: one settings read and the UPDATE; row-lock's five
    # (rounded: the worker's served-count flush, once a second, may ride along in the trace)
    assert [round(float(n)) for n in counted["postgres atomic-update"][2:4]] == [2, 2], result.stdout
    assert [round(float(n)) for n in counted["postgres row-lock"][2:4]] == [5, 5], result.stdout
    assert benchmark_databases(databases) == before


def test_explore_speed_on_the_database_prints_a_row_for_every_database_case(database_url):
    result = run("explore_speed.py", "--database-url", database_url, "--brute-limit", "30", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert {(row[0], row[1]) for row in rows} >= {("deposit", "row-lock"), ("transfer", "naive")}
    with psycopg.connect(database_url) as conn:  # every scratch schema dropped
        left = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bankapp_explore_%'").fetchone()
    assert left == (0,)
