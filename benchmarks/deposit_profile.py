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
wrk's figures (`deposit_guards.py`) add gunicorn's own cost, the same for both
apps, on top of these.
"""

from __future__ import annotations

import argparse
import cProfile
import io
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


APPS = {
    "bankapp": lambda: create_app(Config(race_window_ms=0, deposit_guard="lock")),
    "bankapp, bare domain": lambda: bare_domain(create_app(Config(race_window_ms=0, deposit_guard="lock"))),
    "minimal": lambda: minimal_deposit.app,
}


def serve_turns(label: str, requests: int) -> None:
    """In a child: one timed run per line read from stdin, its CPU us per request printed back."""
    app = APPS[label]()
    serve(app, requests)  # warm up
    for _ in sys.stdin:
        started = time.process_time()
        serve(app, requests)
        print((time.process_time() - started) / requests * 1e6, flush=True)


def export(commit: str, folder: str) -> None:
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "archive", commit, "bankapp"], cwd=root, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)


def in_turns(rows: dict[str, tuple[str, str | None]], requests: int, runs: int) -> dict[str, float]:
    """Row -> the least CPU us per request of `runs` runs; `rows` maps a row to (app, its PYTHONPATH or None)."""
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
    parser.add_argument("--only", choices=APPS, help=argparse.SUPPRESS)  # one app alone, its least printed
    parser.add_argument("--serve", choices=APPS, help=argparse.SUPPRESS)  # one app, one run per line of stdin
    args = parser.parse_args()
    if args.only:
        print(least_us(APPS[args.only](), args.requests, args.runs))
        return 0
    if args.serve:
        serve_turns(args.serve, args.requests)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        rows = {app: (app, None) for app in APPS}
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


if __name__ == "__main__":
    sys.exit(main())
