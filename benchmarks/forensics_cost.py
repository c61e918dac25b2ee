"""What race forensics costs: deposits/s with it and without it, and the lost-update rate before and after.

    python benchmarks/forensics_cost.py [--rounds 5] [--duration 5] [--base COMMIT]

Without it means the code before it: `--base` (by default the parent of the
commit that added `bankapp/lab/forensics`) is exported with `git archive`
into a temporary folder and served from there (`PYTHONPATH`), beside the
working tree's bankapp, both with the same gunicorn settings; no switch in
the product turns recording off. Two measurements, in interleaved rounds so
that a noisy neighbour hits both sides alike:

1. the hot path: wrk drives `POST /accounts/<random>/deposit` at race
   window 0 under `unsafe` (every write versioned, and the races there are
   recorded) and `lock` (versioned, nothing to record), with the worker's
   CPU time per request (from /proc). Target: at least 0.95 of the
   deposits/s without forensics (median of the rounds' ratios).
2. the cost itself, which a busy machine blurs in requests/s: the CPU time
   of a deposit inside each app without gunicorn (`deposit_profile.py
   --only bankapp`, the least of many short runs), each tree in turn;
3. the race itself: `examples/lost_update.py`'s round, 16 threads x 50
   deposits of 1 cent into one account under `unsafe` at the default race
   window (1 ms), on each server. Recording happens after the write, so the
   share of deposits lost must stay where it was.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_server import bench_server
from deposit_guards import DEPOSIT_LUA, send, wrk

from bankapp.server.processes import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.95


def base_commit() -> str:
    """The parent of the commit that added race forensics."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "bankapp/lab/forensics/__init__.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not added:
        raise SystemExit("no commit adds bankapp/lab/forensics here: pass --base")
    parent = subprocess.run(["git", "rev-parse", "--short", added[-1] + "^"], cwd=ROOT, capture_output=True, text=True)
    return parent.stdout.strip()


def export(commit: str, folder: Path) -> None:
    archive = subprocess.run(["git", "archive", commit, "bankapp"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)


def lost_update_round():
    """`run_round` of examples/lost_update.py: the same 16 x 50 run docs/races.md quotes."""
    spec = importlib.util.spec_from_file_location("lost_update", ROOT / "examples" / "lost_update.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_round


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds [%(default)s]")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk measurement [%(default)s]")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections [%(default)s]")
    parser.add_argument("--lost-rounds", type=int, default=3, help="lost-update runs per round [%(default)s]")
    parser.add_argument("--base", help="the commit to compare with [the parent of the one that added forensics]")
    args = parser.parse_args()
    base = args.base or base_commit()
    run_round = lost_update_round()
    with tempfile.TemporaryDirectory() as folder, tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(DEPOSIT_LUA)
        script.flush()
        export(base, Path(folder))
        servers = {
            "without": ServerProcess("--race-window-ms", "0", env={"PYTHONPATH": folder, "PYTHONSAFEPATH": "1"}),
            "with": bench_server(),
        }
        try:
            rows = measure(args, servers, script.name, run_round, folder)
        finally:
            for server in servers.values():
                server.stop()
    report(args, base, rows)
    return 0


def measure(args, servers: dict, script: str, run_round, folder: str) -> dict:
    """{(guard, side): [wrk results]}, {side: [lost shares]}, {side: [in-process us]}, over interleaved rounds."""
    speed: dict[tuple[str, str], list[dict]] = {}
    lost: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for index in range(args.rounds):
        sides = list(servers) if index % 2 == 0 else list(reversed(servers))  # who goes first alternates
        for guard in ("unsafe", "lock"):
            for side in sides:
                server = servers[side]
                send(server.url + "/admin/config", "PATCH", {"deposit_guard": guard, "race_window_ms": 0})
                send(server.url + "/admin/reset", "POST")
                print(f"[round {index + 1}] {guard} {side} forensics ...", file=sys.stderr, flush=True)
                result = wrk(server.url, args.duration, args.connections, server.process.pid, script)
                speed.setdefault((guard, side), []).append(result)
        for _ in range(args.lost_rounds):
            for side in sides:
                send(servers[side].url + "/admin/config", "PATCH", {"race_window_ms": 1.0})
                row = run_round(servers[side].url, "unsafe", 16, 50)
                lost.setdefault(side, []).append(row["lost"] / row["acknowledged"])
        for side in sides:
            cpu.setdefault(side, []).append(in_process_us(folder if side == "without" else None))
    return {"speed": speed, "lost": lost, "cpu": cpu}


def in_process_us(pythonpath: str | None) -> float:
    """CPU microseconds of one deposit under `lock` inside the app, the least of 60 short runs."""
    command = [sys.executable, str(ROOT / "benchmarks" / "deposit_profile.py"), "--only", "bankapp", "--runs", "60"]
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
    return float(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)


def report(args, base: str, rows: dict) -> None:
    speed, lost = rows["speed"], rows["lost"]
    print(f"\nforensics against {base}: medians of {args.rounds} interleaved rounds of {args.duration} s, "
          f"{args.connections} connections, race window 0")  # fmt: skip
    header = f"{'guard':<8} {'without req/s':>13} {'with req/s':>10} {'ratio':>6} {'CPU us without':>15} {'with':>6}"
    print(f"{header}  rounds")
    for guard in ("unsafe", "lock"):
        without, with_ = speed[(guard, "without")], speed[(guard, "with")]
        ratios = [w["rps"] / o["rps"] for w, o in zip(with_, without, strict=True)]
        median = statistics.median
        print(
            f"{guard:<8} {median(r['rps'] for r in without):>13.0f} {median(r['rps'] for r in with_):>10.0f} "
            f"{median(ratios):>6.2f} {median(r['cpu_us'] for r in without):>15.0f} "
            f"{median(r['cpu_us'] for r in with_):>6.0f}  {' '.join(f'{r:.2f}' for r in ratios)}"
            f"  ({'meets' if median(ratios) >= TARGET else 'MISSES'} {TARGET})"
        )
    without, with_ = statistics.median(rows["cpu"]["without"]), statistics.median(rows["cpu"]["with"])
    print(
        f"\nin process, CPU per deposit under lock (least of 60 runs, median of the rounds): without {without:.1f} us, "
        f"with {with_:.1f} us (+{with_ - without:.1f})"
    )
    print("\nlost-update share at the defaults (16 threads x 50 deposits of 1 cent, unsafe, race window 1 ms):")
    for side in ("without", "with"):
        shares = lost[side]
        print(
            f"  {side:<7} forensics: median {statistics.median(shares):.1%}, mean {statistics.mean(shares):.1%} "
            f"(standard deviation {statistics.stdev(shares) if len(shares) > 1 else 0:.1%}, {len(shares)} runs)"
        )


if __name__ == "__main__":
    sys.exit(main())
