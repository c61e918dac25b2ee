"""CPU per deposit inside the app, without gunicorn: bankapp against the ten-minute Flask deposit.

    python benchmarks/deposit_profile.py [--requests 200] [--runs 150] [--profile]

Calls each WSGI app directly, each alone in a process of its own (as in a
server), with the environ gunicorn would build for wrk's deposit
(`POST /accounts/acc-NN/deposit`, `{"amount": 1}`, race window 0,
`deposit_guard` `lock`), and reads the CPU time per request. The least of
`--runs` short runs is reported: interference on a shared machine only ever
adds time, and a short run is likely to pass untouched, so the minimum is the
cost itself. Three rows say where bankapp's extra time goes:

- `bankapp`: the whole app;
- `bankapp, bare domain`: the lab's deposit (guard, account lock, ledger)
  swapped for a dict and a `Lock`, as the minimal app has;
- `minimal`: `minimal_deposit.py`.

`--profile` prints cProfile's top functions of bankapp's deposit by own time.
wrk's figures (`deposit_guards.py`) add gunicorn's own cost, the same for both
apps, on top of these.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys
import threading
import time

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per run [%(default)s]")
    parser.add_argument("--runs", type=int, default=150, help="runs per app; the least is reported [%(default)s]")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions")
    parser.add_argument("--only", choices=APPS, help=argparse.SUPPRESS)  # one app, in a child process
    args = parser.parse_args()
    if args.only:
        print(least_us(APPS[args.only](), args.requests, args.runs))
        return 0
    costs = {}
    for label in APPS:
        command = [sys.executable, __file__, "--only", label, "--requests", str(args.requests)]
        command += ["--runs", str(args.runs)]
        costs[label] = float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        print(f"{label:<22} {costs[label]:6.1f} us of CPU per deposit")
    gap = costs["bankapp"] - costs["minimal"]
    domain = costs["bankapp"] - costs["bankapp, bare domain"]
    print(f"bankapp's extra {gap:.1f} us: the lab's deposit {domain:.1f}, the web layer {gap - domain:.1f}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(serve, APPS["bankapp"](), args.requests * 3)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
