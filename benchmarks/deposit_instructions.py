"""Instructions per deposit inside the app, counted by callgrind: a figure a loaded machine does not move.

    python benchmarks/deposit_instructions.py [--requests 200] [--base COMMIT] [--apps ...] [--through-worker]

CPU time per deposit (`deposit_profile.py`) is the least of many runs, and
on a machine shared with other engineers' test suites even the least moves
by several percent from one run to the next. The number of instructions the
interpreter executes for a deposit does not depend on who else runs, so it
can tell apart changes of a few percent. Each app of `deposit_profile.py`
(the environ gunicorn would build for wrk's deposit, `lock`, race window 0)
is run under `valgrind --tool=callgrind` twice, in a process of its own:
once for a warm-up and 50 deposits, once for the same warm-up and
50 + `--requests` deposits; the difference over `--requests` is one
deposit's instructions, start-up and warm-up cancelled out.

`--through-worker` serves each deposit through the app's gunicorn worker
instead (`worker_deposits.py`: bankapp's `HardenedWorker`, the minimal
app's plain gthread worker, a kept-alive loopback connection, one thread):
the server layer around the app is counted too.

`--base COMMIT` counts bankapp at COMMIT too (exported with `git archive`,
imported from there with `PYTHONPATH`). Under callgrind Python runs about
fifty times slower: a row takes minutes on a busy machine. The counts do not
depend on what else runs, so every process is started at once.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import deposit_profile

HERE = Path(__file__).resolve().parent
WARM = 200
FIRST = 50


def instructions(app: str, requests: int, pythonpath: str | None, through_worker: bool = False) -> int:
    """Instructions callgrind counted for a process serving WARM + `requests` deposits of `app`."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--serve",
        app,
        "--requests",
        str(requests),
        *(["--through-worker"] if through_worker else []),
    ]
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
    done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no count from callgrind for {app}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_deposit(pool: ThreadPoolExecutor, app: str, requests: int, pythonpath: str | None, worker: bool) -> Future:
    short = pool.submit(instructions, app, FIRST, pythonpath, worker)
    long = pool.submit(instructions, app, FIRST + requests, pythonpath, worker)
    return pool.submit(lambda: (long.result() - short.result()) / requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="deposits counted [%(default)s]")
    parser.add_argument("--base", help="also count bankapp at this commit")
    parser.add_argument(
        "--apps", nargs="+", default=["bankapp", "minimal"], choices=deposit_profile.MEMORY_APPS, help="[%(default)s]"
    )
    parser.add_argument(
        "--through-worker",
        action="store_true",
        help="serve each deposit through the app's gunicorn worker, over TCP, in one thread (worker_deposits.py)",
    )
    parser.add_argument("--serve", choices=deposit_profile.MEMORY_APPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve and args.through_worker:  # the child, under callgrind
        import worker_deposits

        worker_deposits.serve(args.serve, WARM, args.requests)
        return 0
    if args.serve:  # the child, under callgrind
        app = deposit_profile.APPS[args.serve]()
        deposit_profile.serve(app, WARM)
        deposit_profile.serve(app, args.requests)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        rows = [(app, app, None) for app in args.apps]
        if args.base:
            deposit_profile.export(args.base, folder)
            rows += [(f"{app} at {args.base}", app, folder) for app in args.apps if app != "minimal"]
        with ThreadPoolExecutor(max_workers=4 * len(rows)) as pool:
            futures = {row: per_deposit(pool, app, args.requests, path, args.through_worker) for row, app, path in rows}
            counts = {row: future.result() for row, future in futures.items()}
    where = ", through the gunicorn worker" if args.through_worker else ""
    print(f"instructions per deposit (callgrind, {args.requests} deposits after a warm-up{where})")
    for row, count in counts.items():
        print(f"{row:<34} {count:>10,.0f}")
    if "minimal" in counts:
        for row, count in counts.items():
            if row != "minimal":
                print(f"minimal / {row}: {counts['minimal'] / count:.2f}")
    if args.base and "bankapp" in counts:
        before = counts[f"bankapp at {args.base}"]
        print(f"bankapp now / at {args.base}: {counts['bankapp'] / before:.3f} ({counts['bankapp'] - before:+,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
