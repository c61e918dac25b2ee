"""The adaptive checkout guard against a hand-tuned semaphore: where its limit settles, and what it costs.

    python benchmarks/adaptive_admission.py [--gateway 8] [--start 24] [--clients 32] [--service-time-ms 50]

Starts `bankapp serve --race-window-ms 0` on a free loopback port and drives
`POST /checkout` from `--clients` threads in a closed loop, far more than
the gateway's `gateway_capacity` G serves at full speed. Reported, never
asserted (a benchmark, not a test):

1. where the `adaptive` guard's limit goes, started at `capacity` = `--start`
   (a wrong guess on purpose), read from `/stats` every 0.5 s: when it first
   lies within G - 1 .. 2G and stays there, and where it settled (the median
   of the last 3 s of a 10 s watch). Target: within 10 s.
2. the same after a live change of G to G / 2 and then to 2 G
   (`PATCH /admin/config gateway_capacity`): it should follow.
3. checkouts completed per second and the p99 of those completed, under
   `adaptive` (settled) and under a semaphore of capacity G, the number an
   operator would have to know: targets 0.9 of the semaphore's completed/s,
   and a p99 at most 1.5 x the semaphore's. Both guards get the same queue
   (`max_waiting` = clients - G, `admission_timeout_ms` 1000).

The algorithm and its parameters are `bankapp.lab.admission.adaptive` (Vegas, after
Netflix's concurrency-limits): alpha = max(1, 0.1 x limit), beta = max(2,
0.3 x limit), windows of at least 10 checkouts and 0.1 s. Progress goes to
stderr, the figures to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

from bench_server import bench_server
from checkout_admission import Client, closed_loop, fmt, measure, progress

from bankapp.lab.admission.adaptive import VegasParameters

WATCH_S = 10.0
EVERY_S = 0.5
SETTLED_TAIL_S = 3.0
THROUGHPUT_TARGET = 0.9
P99_TARGET = 1.5


def watch(url: str, gateway: int, seconds: float) -> dict:
    """Read the limit every EVERY_S for `seconds`; when it entered G-1..2G for good, and where it settled."""
    admin = Client(url)
    readings: list[tuple[float, int]] = []
    began = time.perf_counter()
    while (now := time.perf_counter() - began) < seconds:
        readings.append((now, admin.call("GET", "/stats")[1]["checkout"]["limit"]))
        time.sleep(EVERY_S)
    inside = [gateway - 1 <= limit <= 2 * gateway for _, limit in readings]
    entered = None
    for index in range(len(readings)):
        if all(inside[index:]):
            entered = readings[index][0]
            break
    tail = [limit for at, limit in readings if at >= seconds - SETTLED_TAIL_S]
    return {
        "gateway_capacity": gateway,
        "limits": [limit for _, limit in readings],
        "within_bounds_from_s": entered,
        "settled": statistics.median(tail),
        "tail_range": (min(tail), max(tail)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", type=int, default=8, help="gateway_capacity G [%(default)s]")
    parser.add_argument("--start", type=int, default=24, help="the adaptive guard's starting capacity [%(default)s]")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop client threads [%(default)s]")
    parser.add_argument("--service-time-ms", type=float, default=50, help="gateway time per checkout [%(default)s]")
    parser.add_argument("--duration", type=float, default=5, help="seconds measured per guard [%(default)s]")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    gateway = args.gateway
    queue = args.clients - gateway
    common = {
        "service_time_ms": args.service_time_ms,
        "gateway_capacity": gateway,
        "max_waiting": queue,
        "admission_timeout_ms": 1000,
    }
    adaptive = {**common, "checkout_guard": "adaptive", "capacity": args.start}
    semaphore = {**common, "checkout_guard": "semaphore", "capacity": gateway}
    server = bench_server(threads=args.clients + queue + 8)
    url = server.url
    try:
        admin = Client(url)
        status, body = admin.call("PATCH", "/admin/config", adaptive)
        if status != 200:
            raise SystemExit(f"PATCH {adaptive} refused: {body.get('detail')}")
        admin.call("POST", "/admin/reset")
        stop, measuring = threading.Event(), threading.Event()
        _, threads = closed_loop(url, args.clients, stop, measuring)
        watches = []
        for step, g in enumerate((gateway, max(1, gateway // 2), 2 * gateway), start=1):
            progress(f"[{step}/5] adaptive from capacity {args.start}, gateway_capacity {g}: {WATCH_S:g} s ...")
            admin.call("PATCH", "/admin/config", {"gateway_capacity": g})
            watches.append(watch(url, g, WATCH_S))
        stop.set()
        for thread in threads:
            thread.join(30)
        progress(f"[4/5] adaptive, measured {args.duration:g} s after 10 s to settle ...")
        adaptive_row = measure(url, adaptive, args.clients, WATCH_S, args.duration)
        progress(f"[5/5] semaphore of capacity {gateway}, measured {args.duration:g} s ...")
        semaphore_row = measure(url, semaphore, args.clients, 2, args.duration)
        final = admin.call("GET", "/stats")[1]["checkout"]
    finally:
        server.stop()

    parameters = VegasParameters()
    print(
        f"\nadaptive (Vegas): alpha max(1, {parameters.alpha_share} x limit), beta max(2, {parameters.beta_share} x "
        f"limit), windows of >= {parameters.window_samples} checkouts and {parameters.window_s} s; "
        f"{args.clients} closed-loop clients, service time {args.service_time_ms:g} ms, start at {args.start}"
    )
    print(f"\n{'G':>4} {'bounds':>9} {'within from':>12} {'settled':>8} {'last 3 s':>9}  limits every {EVERY_S} s")
    for row in watches:
        g = row["gateway_capacity"]
        within = "never" if row["within_bounds_from_s"] is None else f"{row['within_bounds_from_s']:.1f} s"
        low, high = row["tail_range"]
        print(
            f"{g:>4} {f'{g - 1}..{2 * g}':>9} {within:>12} {row['settled']:>8g} {f'{low}..{high}':>9}  "
            + " ".join(map(str, row["limits"]))
        )
    done = adaptive_row["completed_per_s"] / semaphore_row["completed_per_s"]
    p99 = (adaptive_row["ok_p99_ms"] or 0) / (semaphore_row["ok_p99_ms"] or 1)
    print(f"\n{'guard':<22} {'done/s':>8} {'ok p50':>8} {'ok p99':>8} {'503/s':>8}")
    for label, row in ((f"adaptive (limit {final['limit']})", adaptive_row), (f"semaphore({gateway})", semaphore_row)):
        print(
            f"{label:<22} {row['completed_per_s']:>8.1f} {fmt(row['ok_p50_ms']):>8} {fmt(row['ok_p99_ms']):>8} "
            f"{row['rejected_per_s']:>8.1f}"
        )
    print(
        f"\nadaptive / semaphore({gateway}): completed {done:.2f} (target >= {THROUGHPUT_TARGET}), "
        f"p99 {p99:.2f} x (target <= {P99_TARGET})"
    )
    if args.json:
        results = {"watches": watches, "adaptive": adaptive_row, "semaphore": semaphore_row, "ratios": [done, p99]}
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
