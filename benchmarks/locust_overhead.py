"""Does the project's bookkeeping slow Locust down? Rates on a bare endpoint, same run.

    python benchmarks/locust_overhead.py [--duration 10] [--users-each 8] [--rounds 3]

Starts `bankapp serve --race-window-ms 0` on a free loopback port and runs
Locust headless (one process) with two user classes side by side against
`GET /healthz` (no guard, no store): a minimal FastHttpUser and a project
user doing the per-request bookkeeping of `DepositUser` (see
`locust_overhead_users.py`). Both share one gevent loop, one CPU and one
server, so the ratio of their request rates is what the bookkeeping costs.

When the server, not Locust, is the bottleneck (likely on a small machine),
both classes get the same rate whatever their cost, so each round also runs
each class alone and reads the Locust process's CPU time (getrusage of the
reaped child: the whole run, start-up included, the same for both classes):
CPU per request says how fast Locust itself could go. Target: the project
user reaches at least 0.8 of the minimal one on both counts.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
from pathlib import Path

from bench_server import bench_server

from bankapp.compare.locust_runs import LocustJob, run_locust

HERE = Path(__file__).resolve().parent
TARGET = 0.8


def locust(url: str, classes: list[str], users: int, duration: int, folder: Path) -> dict:
    """One headless run; requests/s per class and the CPU seconds the Locust process spent."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    job = LocustJob(
        HERE / "locust_overhead_users.py",
        classes,
        url,
        users=users,
        duration=duration,
        prefix=folder / "run",
        verdict=False,
        extra=("--loglevel", "WARNING"),
    )
    run = run_locust(
        job,
        cwd=folder,
        env={"OVERHEAD_USERS_EACH": str(users // len(classes))},
    )
    # Locust's own CPU time, from the kernel: the only child this process reaped during the run
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"cpu_seconds": cpu, "requests": 0, "failures": 0}
    for row in run.stats:
        elapsed = max(row["last_request_timestamp"] - row["start_time"], 1e-9)
        result[row["name"].split(":")[0]] = row["num_requests"] / elapsed
        result["requests"] += row["num_requests"]
        result["failures"] += row["num_failures"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run [%(default)s]")
    parser.add_argument("--users-each", type=int, default=8, help="users of each class [%(default)s]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians count [%(default)s]")
    args = parser.parse_args()
    server = bench_server()
    url = server.url
    side_by_side, cpu = [], []
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            for number in range(1, args.rounds + 1):
                both = locust(url, ["MinimalUser", "BookkeepingUser"], 2 * args.users_each, args.duration, folder)
                side_by_side.append(both["bookkeeping"] / both["minimal"])
                alone = {}
                order = [("minimal", "MinimalUser"), ("bookkeeping", "BookkeepingUser")]
                for kind, cls in order if number % 2 else order[::-1]:  # alternate: neither always goes first
                    run = locust(url, [cls], args.users_each, args.duration, folder)
                    alone[kind] = run["cpu_seconds"] / max(run["requests"], 1) * 1e6
                cpu.append(alone["minimal"] / alone["bookkeeping"])
                print(
                    f"round {number}: same run  minimal {both['minimal']:6.0f} req/s  bookkeeping "
                    f"{both['bookkeeping']:6.0f} req/s  ratio {side_by_side[-1]:.2f}  failures {both['failures']}   |  "
                    f"Locust CPU per request  minimal {alone['minimal']:4.0f} us  bookkeeping "
                    f"{alone['bookkeeping']:4.0f} us  ratio {cpu[-1]:.2f}",
                    flush=True,
                )
    finally:
        server.stop()
    rate, capacity = statistics.median(side_by_side), statistics.median(cpu)
    print(f"\nsame run, same server: the bookkeeping user reached {rate:.2f} of the minimal user's rate")
    print(f"Locust's own capacity (CPU per request): the bookkeeping user can reach {capacity:.2f} of the minimal one")
    worst = min(rate, capacity)
    print(f"target {TARGET}: {'met' if worst >= TARGET else 'MISSED'} (worst of the two medians: {worst:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
