"""CPU per deposit inside the app, without gunicorn: bankapp against the ten-minute Flask deposit.

    python benchmarks/deposit_profile.py [--requests 200] [--runs 150] [--base COMMIT] [--profile]

Calls each WSGI app directly, each alone in a process of its own (as in a
server), with the environ gunicorn would build for wrk's deposit
(`POST /accounts/acc-NN/deposit`, `{"amount": 1}`, race window 0,
`deposit_guard` `lock`), and reads the CPU time per request. The processes
run their short runs in turn, so that a noisy neighbour hits every app
alike, and the least of `--runs` runs is reported: interference on a shared
machine only ever adds time, and a short run is likely to pass untouched, so
the minimum is the cost itself. Three rows say where bankapp's extra time
goes:

- `bankapp`: the whole app;
- `bankapp, bare domain`: the lab's deposit (guard, account lock, ledger)
  swapped for a dict and a `Lock`, as the minimal app has;
- `minimal`: `minimal_deposit.py`.

`--base COMMIT` adds both bankapp rows for the code at COMMIT (exported with
`git archive` into a temporary folder, imported from there with
`PYTHONPATH`), measured in the same turns: before and after, side by side.
`--profile` prints cProfile's top functions of bankapp's deposit by own time.

`--store postgres` measures bankapp's deposit on the postgres store instead,
under `atomic-update` and `row-lock` (and at COMMIT with `--base`), against
the memory store's `lock` deposit, in a database it creates and drops. It
also counts, per deposit, the statements the worker sends and its round
trips to the server (from libpq's protocol trace: a round trip is each time
the worker sent something and then read the answer), and the wall time of
one deposit after another (one client: the round trips' latency shows).
pg_stat_statements would count statements on the server side, but it needs
`shared_preload_libraries` (a server restart), which a shared server may not
have; the trace counts the same, from the client's side.
wrk's figures (`deposit_guards.py`) add gunicorn's own cost, the same for both
apps, on top of these.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import minimal_deposit

from bankapp import create_app
from bankapp.settings import Config

#: Where `--store postgres` tells its children the server (an admin URL) and their databases' prefix: each
#: makes a database of its own (the settings are a database's, so two guards cannot share one).
DATABASE_ENV = "BANKAPP_PROFILE_DATABASES"

BODY = b'{"amount": 1}'


def environ(i: int) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": f"/accounts/acc-{i % 16:02d}/deposit",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)),
        "wsgi.input": io.BytesIO(BODY),
        "wsgi.input_terminated": True,  # as gunicorn says
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def start_response(status: str, headers: list, exc_info=None) -> None:
    assert status.startswith("200"), status


def serve(app, requests: int) -> None:
    for i in range(requests):
        answer = app(environ(i), start_response)
        b"".join(answer)
        answer.close()


def bare_domain(app):
    """The same app with the lab's deposit swapped for what the minimal app does."""
    balances = {account: 100_000 for account in app.extensions["bankapp"].config().account_ids}
    locks = {account: threading.Lock() for account in balances}

    def deposit(account_id: str, amount: int) -> int:
        with locks[account_id]:
            balances[account_id] += amount
            return balances[account_id]

    app.extensions["bankapp"].bank.deposit = deposit
    return app


def least_us(app, requests: int, runs: int) -> float:
    serve(app, requests)  # warm up
    times = []
    for _ in range(runs):
        started = time.process_time()
        serve(app, requests)
        times.append((time.process_time() - started) / requests * 1e6)
    return min(times)


def postgres_app(guard: str):
    """bankapp on the postgres store of `DATABASE_ENV` under `guard` (the settings are the database's: PATCHed)."""
    import psycopg

    from bankapp.postgres import prepare
    from bankapp.settings import load

    admin_url, prefix = os.environ[DATABASE_ENV].split(" ")
    name = f"{prefix}_{os.getpid()}_{guard.replace('-', '_')}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    config = prepare(load({"store": "postgres", "database_url": url, "race_window_ms": 0}, environ={}))
    app = create_app(config)
    app.extensions["bankapp"].settings.patch({"deposit_guard": guard, "race_window_ms": 0})
    return app


APPS = {
    "bankapp": lambda: create_app(Config(race_window_ms=0, deposit_guard="lock")),
    "bankapp, bare domain": lambda: bare_domain(create_app(Config(race_window_ms=0, deposit_guard="lock"))),
    "minimal": lambda: minimal_deposit.app,
    "postgres atomic-update": lambda: postgres_app("atomic-update"),
    "postgres row-lock": lambda: postgres_app("row-lock"),
}
MEMORY_APPS = ("bankapp", "bankapp, bare domain", "minimal")
POSTGRES_APPS = ("bankapp", "postgres atomic-update", "postgres row-lock")


def round_trips(app, requests: int) -> tuple[float, float, float]:
    """(statements, round trips, wall ms) per deposit, one deposit after another, traced by libpq."""
    from psycopg import pq

    lab = app.extensions["bankapp"]
    serve(app, 20)  # warm up: the pool has its connections, psycopg has prepared its statements
    pool = lab.db.pool()
    with tempfile.TemporaryFile("w+") as trace:
        with pool.connection() as conn:  # the pool's connections, each traced
            pass
        connections = list(pool._pool)  # idle ones: between requests every connection is idle
        for conn in connections:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        began = time.perf_counter()
        serve(app, requests)
        wall = time.perf_counter() - began
        for conn in connections:
            conn.pgconn.untrace()
        trace.seek(0)
        # a message's own lines (a Parse's SQL text, newlines and all) can start with F or B too: not a message
        directions = [parts[:3] for parts in (line.split("\t", 3) for line in trace) if parts[0] in ("F", "B")]
        directions = [parts for parts in directions if len(parts) == 3]
    statements = sum(1 for side, _, message in directions if side == "F" and message in ("Execute", "Query"))
    trips = sum(1 for before, after in itertools.pairwise(directions) if before[0] == "F" and after[0] == "B")
    return statements / requests, trips / requests, wall / requests * 1000


def serve_turns(label: str, requests: int) -> None:
    """In a child: one timed run per line read from stdin, its CPU us per request printed back.

    A line `trips` asks for the round trips instead (`round_trips`), printed as three numbers."""
    app = APPS[label]()
    serve(app, requests)  # warm up
    for line in sys.stdin:
        if line.strip() == "trips":
            print(*round_trips(app, requests), flush=True)
            continue
        started = time.process_time()
        serve(app, requests)
        print((time.process_time() - started) / requests * 1e6, flush=True)


def export(commit: str, folder: str) -> None:
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "archive", commit, "bankapp"], cwd=root, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)


def in_turns(
    rows: dict[str, tuple[str, str | None]], requests: int, runs: int, trips: dict | None = None
) -> dict[str, float]:
    """Row -> the least CPU us per request of `runs` runs; `rows` maps a row to (app, its PYTHONPATH or None).

    With `trips` (a dict), the postgres rows' round trips are put there too, after the runs."""
    children = {}
    try:
        for row, (app, pythonpath) in rows.items():
            env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
            command = [sys.executable, __file__, "--serve", app, "--requests", str(requests)]
            children[row] = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        least = dict.fromkeys(rows, float("inf"))
        for _ in range(runs):
            for row, child in children.items():
                child.stdin.write("go\n")
                child.stdin.flush()
                least[row] = min(least[row], float(child.stdout.readline()))
        for row, child in children.items():
            if trips is not None and rows[row][0].startswith("postgres"):
                child.stdin.write("trips\n")
                child.stdin.flush()
                trips[row] = tuple(float(n) for n in child.stdout.readline().split())
        return least
    finally:
        for child in children.values():
            child.stdin.close()
            child.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per run [%(default)s]")
    parser.add_argument("--runs", type=int, default=150, help="runs per app; the least is reported [%(default)s]")
    parser.add_argument("--base", help="also measure bankapp at this commit, in the same turns")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions")
    parser.add_argument("--store", choices=("memory", "postgres"), default="memory", help="[%(default)s]")
    parser.add_argument("--admin-url", default="postgresql://root@127.0.0.1:5432/postgres", help="--store postgres")
    parser.add_argument("--only", choices=APPS, help=argparse.SUPPRESS)  # one app alone, its least printed
    parser.add_argument("--serve", choices=APPS, help=argparse.SUPPRESS)  # one app, one run per line of stdin
    args = parser.parse_args()
    if args.only:
        print(least_us(APPS[args.only](), args.requests, args.runs))
        return 0
    if args.serve:
        serve_turns(args.serve, args.requests)
        return 0
    if args.store == "postgres":
        return profile_postgres(args)
    with tempfile.TemporaryDirectory() as folder:
        rows = {app: (app, None) for app in MEMORY_APPS}
        if args.base:
            export(args.base, folder)
            rows |= {f"{app} at {args.base}": (app, folder) for app in ("bankapp", "bankapp, bare domain")}
        costs = in_turns(rows, args.requests, args.runs)
    for row, cost in costs.items():
        print(f"{row:<34} {cost:6.1f} us of CPU per deposit")
    sides = [("now", "bankapp", "bankapp, bare domain")]
    if args.base:
        sides.append((args.base, f"bankapp at {args.base}", f"bankapp, bare domain at {args.base}"))
    for side, whole, bare in sides:
        gap = costs[whole] - costs["minimal"]
        domain = costs[whole] - costs[bare]
        print(
            f"{side}: bankapp's extra {gap:.1f} us: the lab's deposit {domain:.1f}, the web layer {gap - domain:.1f}; "
            f"minimal / bankapp {costs['minimal'] / costs[whole]:.2f}"
        )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(serve, APPS["bankapp"](), args.requests * 3)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


def profile_postgres(args: argparse.Namespace) -> int:
    """The postgres deposits against the memory `lock` deposit, in a database of this run's own."""
    import psycopg

    prefix = f"bankapp_profile_{os.getpid()}"
    os.environ[DATABASE_ENV] = f"{args.admin_url} {prefix}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            rows = {app: (app, None) for app in POSTGRES_APPS}
            if args.base:
                export(args.base, folder)
                rows |= {f"{app} at {args.base}": (app, folder) for app in POSTGRES_APPS}
            trips: dict[str, tuple[float, float, float]] = {}
            costs = in_turns(rows, args.requests, args.runs, trips)
            if args.profile:
                for guard in ("atomic-update", "row-lock"):
                    print(f"\ncProfile, postgres {guard}, by own time:")
                    profiler = cProfile.Profile()
                    profiler.runcall(serve, postgres_app(guard), args.requests * 3)
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            like = (prefix.replace("_", r"\_") + "%",)
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname LIKE %s", like)
            for (name,) in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", like).fetchall():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # the profile's pools reconnect
    print(f"\nleast of {args.runs} runs of {args.requests} deposits, each app in a process of its own, in turns")
    print(f"{'row':<40} {'CPU us':>7} {'vs memory':>9} {'statements':>10} {'round trips':>11} {'wall ms':>8}")
    for row, cost in costs.items():
        memory = costs["bankapp" + row.partition(" at ")[1] + row.partition(" at ")[2]]
        statements, round_trips_, wall = trips.get(row, (0, 0, 0))
        counted = f"{statements:>10.2f} {round_trips_:>11.2f} {wall:>8.2f}" if row in trips else ""
        print(
            f"{(row.replace('bankapp', 'memory lock', 1) if row.startswith('bankapp') else row):<40} {cost:>7.1f} "
            f"{memory / cost:>9.2f} {counted}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
