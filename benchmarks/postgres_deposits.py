"""Deposits/s on the postgres store with 1, 2 and 4 workers, beside pgbench on the same server.

    python benchmarks/postgres_deposits.py [--duration 5] [--connections 16] [--threads 8] [--rounds 2]
        [--admin-url postgresql://root@127.0.0.1:5432/postgres]

Creates a database of its own (dropped at the end), and for each number of
workers starts `bankapp serve --store postgres --race-window-ms 0 --workers
W` and drives `POST /accounts/<random>/deposit` with wrk (Debian package
`wrk`) under `atomic-update` and `row-lock`. Beside each, in the same run
and on the same server, pgbench (it ships with the server: Debian package
`postgresql-15`) runs the SQL each guard amounts to, with as many
connections: the database's own ceiling for that work.

- `atomic-update` against `UPDATE ... SET balance = balance + 1 ...` (one
  statement, autocommit);
- `row-lock` against `BEGIN; SELECT ... FOR UPDATE; UPDATE ...; COMMIT`.

What the gap is: HTTP, gunicorn, Flask, JSON, the per-request settings
read, and Python. The ratio 2 workers / 1 worker says how much a second
process buys on a 2-core machine that also runs PostgreSQL and the load
generators. Also printed: what the per-request settings read costs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from deposit_guards import DEPOSIT_LUA, send, wrk

from bankapp.server.processes import ServerProcess

GUARDS = ("atomic-update", "row-lock")
WORKERS = (1, 2, 4)
ACCOUNT = "'acc-' || lpad(:n::text, 2, '0')"
COUNTED = "version = version + 1, deposits = deposits + 1, deposit_amount = deposit_amount + 1, net = net + 1"
PGBENCH = {
    "atomic-update": f"\\set n random(0, 15)\nUPDATE bankapp_accounts SET balance = balance + 1, {COUNTED} "
    f"WHERE id = {ACCOUNT};\n",
    "row-lock": f"\\set n random(0, 15)\nBEGIN;\n"
    f"SELECT balance FROM bankapp_accounts WHERE id = {ACCOUNT} FOR UPDATE;\n"
    f"UPDATE bankapp_accounts SET balance = balance + 1, {COUNTED} WHERE id = {ACCOUNT};\nCOMMIT;\n",
}


def database(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def pgbench(url: str, script: Path, duration: int, connections: int) -> float:
    """pgbench's transactions per second for `script`."""
    command = ["pgbench", "-n", "-c", str(connections), "-j", "2", "-T", str(duration), "-f", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    found = re.search(r"tps = ([\d.]+)", output.stdout)
    if not found:
        raise RuntimeError(f"pgbench said:\n{output.stdout}\n{output.stderr}")
    return float(found.group(1))


def settings_read_cost(url: str, samples: int = 2000) -> float:
    """Median microseconds of the per-request settings read (`DatabaseSettings.current`), in this process."""
    from bankapp.postgres import PostgresLab, prepare
    from bankapp.settings import load

    lab = PostgresLab(prepare(load({"store": "postgres", "database_url": url}, environ={})))
    try:
        lab.config()
        times = []
        for _ in range(samples):
            began = time.perf_counter()
            lab.config()
            times.append((time.perf_counter() - began) * 1e6)
        return statistics.median(times)
    finally:
        lab.close()


def measure(url: str, args: argparse.Namespace, script_dir: Path, lua: str) -> dict:
    """One round: per number of workers, pgbench and wrk for each guard, side by side."""
    found: dict = {}
    for workers in WORKERS:
        flags = ("--store", "postgres", "--database-url", url, "--race-window-ms", "0")
        with ServerProcess(*flags, "--workers", str(workers), "--threads", str(args.threads), startup_timeout=60) as s:
            for guard in GUARDS:
                print(f"  {workers} worker(s), {guard}: pgbench, then wrk ...", file=sys.stderr, flush=True)
                ceiling = pgbench(url, script_dir / f"{guard}.sql", args.duration, args.connections)
                send(s.url + "/admin/config", "PATCH", {"deposit_guard": guard})
                send(s.url + "/admin/reset", "POST")
                result = wrk(s.url, args.duration, args.connections, lua)
                found[(guard, workers)] = {**result, "pgbench_tps": ceiling}
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement [%(default)s]")
    parser.add_argument("--connections", type=int, default=16, help="wrk and pgbench connections [%(default)s]")
    parser.add_argument("--threads", type=int, default=8, help="server threads per worker [%(default)s]")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; medians reported [%(default)s]")
    parser.add_argument("--admin-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    for tool in ("wrk", "pgbench"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (apt-get install -y wrk postgresql)", file=sys.stderr)
            return 2
    name = f"bankapp_bench_{int(time.time())}"
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database(args.admin_url, name)
    rounds = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            script_dir = Path(folder)
            for guard, script in PGBENCH.items():
                (script_dir / f"{guard}.sql").write_text(script)
            (script_dir / "deposit.lua").write_text(DEPOSIT_LUA)
            settings_us = None
            for number in range(args.rounds):
                print(f"round {number + 1} of {args.rounds}", file=sys.stderr, flush=True)
                rounds.append(measure(url, args, script_dir, str(script_dir / "deposit.lua")))
                settings_us = settings_read_cost(url) if settings_us is None else settings_us
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    rows = report(rounds, args, settings_us)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def report(rounds: list[dict], args: argparse.Namespace, settings_us: float) -> list[dict]:
    rows = []
    for guard in GUARDS:
        for workers in WORKERS:
            runs = [found[(guard, workers)] for found in rounds]
            rows.append(
                {
                    "guard": guard,
                    "workers": workers,
                    "deposits_per_s": statistics.median(run["rps"] for run in runs),
                    "pgbench_tps": statistics.median(run["pgbench_tps"] for run in runs),
                    "ratio_to_pgbench": statistics.median(run["rps"] / run["pgbench_tps"] for run in runs),
                    "p99_ms": statistics.median(run["p99_ms"] or 0 for run in runs),
                    "non_2xx": sum(run["non_2xx"] for run in runs),
                }
            )
    print(f"\nmedians of {args.rounds} rounds of {args.duration} s, {args.connections} connections, race window 0")
    print(f"{'guard':<14} {'workers':>7} {'deposits/s':>10} {'pgbench tps':>11} {'ratio':>6} {'p99 ms':>7}", end="")
    print(f" {'non-2xx':>7}")
    for row in rows:
        print(
            f"{row['guard']:<14} {row['workers']:>7} {row['deposits_per_s']:>10.0f} {row['pgbench_tps']:>11.0f} "
            f"{row['ratio_to_pgbench']:>6.2f} {row['p99_ms']:>7.1f} {row['non_2xx']:>7}"
        )
    for guard in GUARDS:
        by = {row["workers"]: row["deposits_per_s"] for row in rows if row["guard"] == guard}
        print(f"{guard}: 2 workers / 1 worker = {by[2] / by[1]:.2f}, 4 workers / 1 worker = {by[4] / by[1]:.2f}")
    print(f"the per-request settings read: {settings_us:.0f} us (median, in process)")
    return rows


if __name__ == "__main__":
    sys.exit(main())
