"""Deposits/s on the postgres store against the memory store's, beside pgbench on the same server, in one run.

    python benchmarks/postgres_deposits.py [--duration 5] [--connections 16] [--threads 18] [--rounds 3]
        [--workers 1 2] [--base COMMIT] [--admin-url postgresql://root@127.0.0.1:5432/postgres]

Creates a database of its own (dropped at the end, whatever happens) and
starts, on free loopback ports, with race window 0:

- `bankapp serve` on the memory store, `deposit_guard` `lock`, one worker:
  the reference every postgres row is a ratio of;
- `bankapp serve --store postgres --workers W` for each W of `--workers`,
  driven under `atomic-update` and under `row-lock` (switched with PATCH,
  which every worker of the fleet reads);
- with `--base COMMIT`, the same servers on bankapp at COMMIT (exported with
  `git archive`, served beside them on the same database): before and after;
- the hand-written deposits, under plain gunicorn with the same settings:
  `minimal_deposit.py` (a dict) and `minimal_postgres_deposit.py` (one
  `UPDATE` through psycopg's pool, on the same database). Their ratio is
  what a round trip to the database costs a deposit with nothing of the
  lab around it: the anchor for `atomic-update` against the memory store.

wrk (Debian package `wrk`) drives `POST /accounts/<random>/deposit` on each
in turn, in interleaved rounds, so that a noisy neighbour on a shared
machine hits every row alike; each ratio is of measurements taken in the
same round. In every round pgbench (it ships with the server: Debian
package `postgresql-15`) runs the SQL each guard amounts to, with as many
connections: the database's own ceiling for that work.

- `atomic-update` against `UPDATE ... SET balance = balance + 1 ...` (one
  statement, autocommit);
- `row-lock` against `BEGIN; SELECT ... FOR UPDATE; UPDATE ...; COMMIT`.

What the gap is: HTTP, gunicorn, Flask, JSON, the per-request settings
read, the round trips, and Python. Goals (issue 21): `atomic-update` on one
worker at least 0.8 of the memory `lock` deposit, `row-lock` at least 0.6,
two workers at least 1.4 times one, in every round.
"""

from __future__ import annotations

import argparse
import json
import os
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
from bench_server import start_minimal_server
from deposit_guards import DEPOSIT_LUA, send, wrk
from deposit_profile import export

from bankapp.server.processes import ServerProcess, stop_process

GUARDS = ("atomic-update", "row-lock")
GOALS = {"atomic-update": 0.8, "row-lock": 0.6}
SCALING_GOAL = 1.4
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


def pgbench(url: str, script: Path, duration: int, connections: int, attempts: int = 5) -> float:
    """pgbench's transactions per second for `script`.

    A server shared with other work may be at `max_connections` for a moment: then it waits and tries again."""
    command = ["pgbench", "-n", "-c", str(connections), "-j", "2", "-T", str(duration), "-f", str(script), url]
    for attempt in range(1, attempts + 1):
        output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
        found = re.search(r"tps = ([\d.]+)", output.stdout)
        if found:
            return float(found.group(1))
        if "too many clients" not in output.stderr or attempt == attempts:
            raise RuntimeError(f"pgbench said:\n{output.stdout}\n{output.stderr}")
        print(f"  the server has no connection free for pgbench; again in {attempt * 3} s", file=sys.stderr)
        time.sleep(attempt * 3)
    raise AssertionError("unreachable")


def settings_read_cost(url: str, samples: int = 2000) -> float:
    """Median microseconds of a settings read (`DatabaseSettings.current`) outside a request, in this process."""
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


class Fleet:
    """The servers of one code (the working tree, or `--base`): memory, and postgres with each number of workers."""

    def __init__(self, label: str, url: str, args: argparse.Namespace, env: dict | None):
        self.label = label
        self.servers: dict[str, ServerProcess] = {}
        common = ("--race-window-ms", "0", "--threads", str(args.threads))
        try:
            self.servers["memory"] = ServerProcess(*common, env=env, startup_timeout=60)
            for workers in args.workers:
                flags = ("--store", "postgres", "--database-url", url, "--workers", str(workers))
                self.servers[f"postgres {workers}"] = ServerProcess(*common, *flags, env=env, startup_timeout=60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat (Linux)."""
    fields = [int(each) for each in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all the machine's cores that was busy between two `cpu_times()` (wrk, PostgreSQL, the
    workers and any neighbour): near 1, a second worker has no core left to run on."""
    return (after[0] - before[0]) / max(1, after[1] - before[1])


class HandWritten:
    """The hand-written deposits, each under plain gunicorn (gthread, one worker, the same threads): in memory,
    and one UPDATE on the benchmark's database (whose tables bankapp made)."""

    def __init__(self, url: str, threads: int):
        self.servers: dict[str, tuple[subprocess.Popen, str]] = {}
        try:
            self.servers["memory"] = start_minimal_server(threads)
            self.servers["postgres"] = start_minimal_server(threads, database_url=url)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process, _ in self.servers.values():
            stop_process(process)  # SIGTERM by PID, then SIGKILL if it will not go


def measure_round(
    fleets: list[Fleet],
    hand: HandWritten,
    args: argparse.Namespace,
    script_dir: Path,
    step: list[int],
    hand_first: bool = True,
) -> dict:
    """One round: pgbench for each guard, then every fleet's rows and the hand-written ones (first or last), each
    measured once (the caller alternates the order from round to round, so that nothing always goes first)."""
    found: dict = {}
    lua = str(script_dir / "deposit.lua")

    def run(key: tuple, server: ServerProcess | tuple[subprocess.Popen, str]) -> None:
        step[0] += 1
        print(f"[{step[0]}/{step[1]}] {' '.join(map(str, key))} ...", file=sys.stderr, flush=True)
        if isinstance(server, ServerProcess):
            send(server.url + "/admin/reset", "POST")
            url, pid = server.url, server.pid
        else:
            url, pid = server[1], server[0].pid
        before = cpu_times()
        found[key] = wrk(url, args.duration, args.connections, pid, lua)
        found[key]["busy"] = busy(before, cpu_times())

    for guard in GUARDS:
        step[0] += 1
        print(f"[{step[0]}/{step[1]}] pgbench {guard} ...", file=sys.stderr, flush=True)
        found[("pgbench", guard)] = pgbench(args.url, script_dir / f"{guard}.sql", args.duration, args.connections)

    def hand_written() -> None:
        for store in ("memory", "postgres"):
            run(("hand-written", store, "UPDATE" if store == "postgres" else "lock", 1), hand.servers[store])

    if hand_first:
        hand_written()
    for fleet in fleets:
        memory = fleet.servers["memory"]
        send(memory.url + "/admin/config", "PATCH", {"deposit_guard": "lock"})
        run((fleet.label, "memory", "lock", 1), memory)
        for guard in GUARDS:
            for workers in args.workers:
                server = fleet.servers[f"postgres {workers}"]
                send(server.url + "/admin/config", "PATCH", {"deposit_guard": guard})  # the fleet's, in the database
                run((fleet.label, "postgres", guard, workers), server)
    if not hand_first:
        hand_written()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement [%(default)s]")
    parser.add_argument("--connections", type=int, default=16, help="wrk and pgbench connections [%(default)s]")
    # 18: a deposit that waits on the database passes the door like any lock wait (threads - 2 at once per
    # worker), so 16 connections on one worker need 18 threads to be served rather than turned away with 503
    parser.add_argument("--threads", type=int, default=18, help="server threads per worker [%(default)s]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported [%(default)s]")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="postgres fleet sizes [1 2]")
    parser.add_argument("--base", help="also serve bankapp at this commit and measure it in the same rounds")
    parser.add_argument("--admin-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if 1 not in args.workers:
        parser.error("--workers must include 1: every ratio is of one worker")
    for tool in ("wrk", "pgbench"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (apt-get install -y wrk postgresql)", file=sys.stderr)
            return 2
    began = time.monotonic()
    name = f"bankapp_bench_{os.getpid()}_{int(time.time())}"  # the pid: a test finds what this run made
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    args.url = database(args.admin_url, name)
    rounds: list[dict] = []
    fleets: list[Fleet] = []
    hand: HandWritten | None = None
    try:
        with tempfile.TemporaryDirectory() as folder:
            script_dir = Path(folder)
            for guard, script in PGBENCH.items():
                (script_dir / f"{guard}.sql").write_text(script)
            (script_dir / "deposit.lua").write_text(DEPOSIT_LUA)
            fleets.append(Fleet("now", args.url, args, None))
            if args.base:
                export(args.base, str(script_dir))
                fleets.append(Fleet(args.base, args.url, args, {"PYTHONPATH": folder, "PYTHONSAFEPATH": "1"}))
            hand = HandWritten(args.url, args.threads)  # after bankapp made the tables
            step = [0, args.rounds * (len(GUARDS) + 2 + len(fleets) * (1 + len(GUARDS) * len(args.workers)))]
            for number in range(args.rounds):
                order = fleets if number % 2 == 0 else fleets[::-1]
                rounds.append(measure_round(order, hand, args, script_dir, step, hand_first=number % 2 == 0))
            for fleet in fleets:
                fleet.stop()
            hand.stop()
            settings_us = settings_read_cost(args.url)
    finally:
        for fleet in fleets:
            fleet.stop()
        try:
            if hand is not None:
                hand.stop()
        finally:
            with psycopg.connect(args.admin_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    rows = report(rounds, args, [fleet.label for fleet in fleets], settings_us, time.monotonic() - began)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def report(rounds: list[dict], args: argparse.Namespace, labels: list[str], settings_us: float, took: float) -> list:
    """Medians over the rounds of each row and of each ratio taken within a round; every round's ratio too."""
    median = statistics.median

    def rps(key: tuple) -> list[float]:
        return [found[key]["rps"] if key[0] != "pgbench" else found[key] for found in rounds]

    def ratios(key: tuple, of: tuple) -> list[float]:
        return [a / b for a, b in zip(rps(key), rps(of), strict=True)]

    def listed(values: list[float]) -> str:
        return " ".join(f"{value:.2f}" for value in values)

    print(
        f"\n{args.rounds} interleaved rounds of {args.duration} s per row, {args.connections} connections, "
        f"{args.threads} threads per worker, race window 0; the run took {took:.0f} s"
    )
    for guard in GUARDS:
        print(f"pgbench, {guard}'s SQL: {median(rps(('pgbench', guard))):.0f} tps")
    print(
        f"\n{'code':<10} {'store':<9} {'guard':<14} {'workers':>7} {'deposits/s':>10} {'p99 ms':>7} {'non-2xx':>7} "
        f"{'vs memory':>9} {'vs pgbench':>10} {'CPU us':>6} {'busy':>5}  per round, vs memory"
    )
    rows = []
    for label in labels:
        memory = (label, "memory", "lock", 1)
        keys = [memory] + [(label, "postgres", guard, workers) for guard in GUARDS for workers in args.workers]
        for key in keys:
            store, guard, workers = key[1:]
            vs_memory = ratios(key, memory)
            row = {
                "code": label,
                "store": store,
                "guard": guard,
                "workers": workers,
                "deposits_per_s": median(rps(key)),
                "p99_ms": median(found[key]["p99_ms"] or 0 for found in rounds),
                "non_2xx": sum(found[key]["non_2xx"] for found in rounds),
                "vs_memory": median(vs_memory),
                "vs_memory_rounds": vs_memory,
                "vs_pgbench": None if store == "memory" else median(ratios(key, ("pgbench", guard))),
                "worker_cpu_us": median(found[key]["cpu_us"] for found in rounds),
                "machine_busy": median(found[key]["busy"] for found in rounds),
            }
            rows.append(row)
            vs_pgbench = "" if row["vs_pgbench"] is None else f"{row['vs_pgbench']:.2f}"
            print(
                f"{label:<10} {store:<9} {guard:<14} {workers:>7} {row['deposits_per_s']:>10.0f} "
                f"{row['p99_ms']:>7.1f} {row['non_2xx']:>7} {row['vs_memory']:>9.2f} {vs_pgbench:>10} "
                f"{row['worker_cpu_us']:>6.0f} {row['machine_busy']:>5.0%}  {listed(vs_memory)}"
            )
    print()
    for label in labels:
        for guard in GUARDS:
            one = (label, "postgres", guard, 1)
            goal, vs_memory = GOALS[guard], median(ratios(one, (label, "memory", "lock", 1)))
            print(f"{label}: {guard}, 1 worker: {vs_memory:.2f} of memory lock (goal {goal}: ", end="")
            print("meets)" if vs_memory >= goal else "MISSES)")
            for workers in (w for w in args.workers if w > 1):
                scaling = ratios((label, "postgres", guard, workers), one)
                verdict = "holds in every round" if min(scaling) >= SCALING_GOAL else "MISSED in a round"
                print(
                    f"{label}: {guard}, {workers} workers / 1 worker: {median(scaling):.2f} "
                    f"(rounds {listed(scaling)}; goal {SCALING_GOAL}: {verdict})"
                )
    if len(labels) > 1:
        for store, guard, workers in [("memory", "lock", 1)] + [
            ("postgres", g, w) for g in GUARDS for w in args.workers
        ]:
            gain = ratios((labels[0], store, guard, workers), (labels[1], store, guard, workers))
            print(
                f"{store} {guard}, {workers} worker(s): now / {labels[1]} = {median(gain):.2f} (rounds {listed(gain)})"
            )
    memory, update = ("hand-written", "memory", "lock", 1), ("hand-written", "postgres", "UPDATE", 1)
    floor = ratios(update, memory)
    print(
        f"hand-written Flask deposits: one UPDATE through psycopg's pool {median(rps(update)):.0f}/s, "
        f"in memory {median(rps(memory)):.0f}/s: {median(floor):.2f} (rounds {listed(floor)}), what a round trip "
        f"costs with nothing of the lab around it (worker CPU {median(f[update]['cpu_us'] for f in rounds):.0f} "
        f"vs {median(f[memory]['cpu_us'] for f in rounds):.0f} us per request)"
    )
    for label in labels:
        lab_memory = (label, "memory", "lock", 1)
        bankapp_vs_hand = ratios(lab_memory, memory)
        print(
            f"{label}: bankapp's memory lock deposit / the hand-written one: {median(bankapp_vs_hand):.2f} "
            f"(rounds {listed(bankapp_vs_hand)})"
        )
        atomic_vs_hand = ratios((label, "postgres", "atomic-update", 1), update)
        print(
            f"{label}: bankapp's atomic-update deposit, 1 worker / the hand-written UPDATE: "
            f"{median(atomic_vs_hand):.2f} (rounds {listed(atomic_vs_hand)})"
        )
    for key in (memory, update):
        rows.append(
            {
                "code": key[0],
                "store": key[1],
                "guard": key[2],
                "workers": 1,
                "deposits_per_s": median(rps(key)),
                "p99_ms": median(found[key]["p99_ms"] or 0 for found in rounds),
                "non_2xx": sum(found[key]["non_2xx"] for found in rounds),
                "vs_memory": median(ratios(key, memory)),
                "vs_memory_rounds": ratios(key, memory),
                "vs_pgbench": median(ratios(key, ("pgbench", "atomic-update"))) if key == update else None,
                "worker_cpu_us": median(found[key]["cpu_us"] for found in rounds),
                "machine_busy": median(found[key]["busy"] for found in rounds),
            }
        )
    print(f"a settings read outside a request: {settings_us:.0f} us (median, in process)")
    return rows


if __name__ == "__main__":
    sys.exit(main())
