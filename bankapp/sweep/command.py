"""`bankapp sweep`: its flags, and the run with a line of progress per point.

Exit codes: 0; 2 for a usage error (a bad --users, --rate, --keys value,
named) or a run that cannot go on (the message says why); 130 when
interrupted, with the server and Locust stopped either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .levels import DEFAULT_USERS, LevelError, parse_keys, parse_race_windows, parse_rates, parse_users

#: --quick: a sweep for a demo, within 90 s on two cores.
QUICK: dict[str, Any] = {"users": [1, 4, 16], "repeat": 3, "duration": 1.5, "warmup": 0.5}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "sweep",
        help="measure each guard across load levels, with confidence intervals and a scalability fit",
        description="Run each guard at several concurrency levels (closed loop, Locust) or arrival rates (--rate, "
        "open loop), each repeated, and fit the Universal Scalability Law per guard. Writes results.json, "
        "report.md and sweep.png. See docs/sweeps.md.",
    )
    parser.add_argument("--scenario", choices=["deposit", "checkout", "transfer"], default="deposit")
    parser.add_argument("--guards", help="comma-separated guards or policies, e.g. unsafe,lock,semaphore(4)")
    parser.add_argument("--users", help=f"closed-loop levels [{','.join(map(str, DEFAULT_USERS))}]")
    parser.add_argument("--rate", help="open loop: arrival rates in requests/s, comma-separated, e.g. 50,100,200")
    parser.add_argument("--keys", default="spread", help="spread (16 accounts), hot (one), zipf:S [spread]")
    parser.add_argument("--race-window-ms", help="sweep these race windows too, e.g. 0,1,5 (a series per window)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats per point [5]; with 3 the interval is wide")
    parser.add_argument("--duration", type=float, default=5, help="measured seconds per repeat [5]")
    parser.add_argument("--warmup", type=float, default=1, help="seconds before measuring, left out [1]")
    parser.add_argument("--think-ms", type=float, default=0, help="each user's think time Z in ms [0]")
    parser.add_argument("--store", choices=["memory", "postgres"], default="memory")
    parser.add_argument("--database-url", help="libpq URL of the database (the postgres store)")
    parser.add_argument("--workers", type=int, help="gunicorn workers: 1 in memory, [2] on the postgres store")
    parser.add_argument("--out", type=Path, help="report folder [reports/sweep-<time>]")
    parser.add_argument("--quick", action="store_true", help="users 1,4,16, 3 repeats of 1.5 s: within 90 s")


def build(args: argparse.Namespace):
    """The `Sweep` the flags ask for; raises `LevelError` naming a bad flag."""
    from .runner import Sweep

    workers = 2 if args.workers is None and args.store == "postgres" else (1 if args.workers is None else args.workers)
    if workers < 1:
        raise LevelError(f"--workers: {workers} is not a positive number of workers")
    if args.repeat < 1:
        raise LevelError(f"--repeat: {args.repeat} is not a positive number of repeats")
    if args.duration <= 0 or args.warmup < 0 or args.think_ms < 0:
        raise LevelError("--duration must be above 0, --warmup and --think-ms at least 0")
    if args.store == "postgres" and not args.database_url:
        raise LevelError("--database-url: the postgres store needs the database's URL")
    if args.store == "memory" and workers != 1:
        raise LevelError("--workers: the memory store runs one worker; use --store postgres for a fleet")
    if args.rate and args.users:
        raise LevelError("--rate and --users: pick one, arrival rates (open loop) or users (closed loop)")
    quick = QUICK if args.quick else {}
    sweep = Sweep(
        scenario=args.scenario,
        guards=[guard.strip() for guard in args.guards.split(",")] if args.guards else None,
        users=parse_users(args.users) if args.users else list(quick.get("users", DEFAULT_USERS)),
        rates=parse_rates(args.rate) if args.rate else None,
        keys=parse_keys(args.keys, args.scenario),
        repeat=quick.get("repeat", args.repeat),
        duration=quick.get("duration", args.duration),
        warmup=quick.get("warmup", args.warmup),
        think_ms=args.think_ms,
        race_windows=parse_race_windows(args.race_window_ms) if args.race_window_ms else None,
        store=args.store,
        database_url=args.database_url,
        workers=workers,
        out=args.out,
    )
    if args.quick and not args.guards:
        sweep.guards = sweep.chosen_guards()[:2]
    return sweep


def run(args: argparse.Namespace) -> int:
    try:
        sweep = build(args)
    except LevelError as error:
        print(f"bankapp sweep: {error}", file=sys.stderr)
        return 2
    from ..server.processes import ProcessError
    from .report import write
    from .runner import SweepError, execute

    began = time.monotonic()

    def progress(done: int, total: int, label: str) -> None:
        print(f"[{done}/{total}] {time.monotonic() - began:5.0f} s  {label}", file=sys.stderr, flush=True)

    try:
        results, folder = execute(sweep, progress)
    except (SweepError, ProcessError) as error:
        print(f"bankapp sweep: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bankapp sweep: interrupted; server and Locust stopped", file=sys.stderr)
        return 130
    paths = write(results, folder)
    print(paths["md"].read_text())
    print(f"written: {', '.join(str(path) for path in paths.values())}")
    return 0
