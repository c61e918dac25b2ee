"""Checkout admission under overload: throughput against Little's law, and how fast a rejection is.

    python benchmarks/checkout_admission.py [--duration 5] [--clients 24] [--capacity 8] [--service-time-ms 50]

Starts `bankapp serve --race-window-ms 0` on a free loopback port and drives
`POST /checkout` from `--clients` threads in a closed loop (each sends its
next checkout as soon as it has an answer), far more than the `capacity`
the semaphore admits. Three things are measured:

1. admitted checkouts per second under `semaphore` (with a short queue so a
   freed permit is taken at once), against Little's law: with `capacity`
   checkouts in the gateway at once, each taking `service_time`, no more
   than `capacity / service_time` can finish per second. Target: 0.9 of it.
   The same load under `unsafe` and `lock` is shown for comparison: `unsafe`
   reaches the same throughput only by making every checkout slower (the
   gateway is the bottleneck either way); `lock` gets 1 / service_time.
2. how long a rejection takes with `admission_timeout_ms` 0, measured by the
   client (HTTP round trip on loopback included) while the permits are held
   by long checkouts. Target: p99 under 5 ms. A fast "no" is the point of
   admission control: the client can retry elsewhere instead of queueing.

Throughput is counted by the server (`/stats` `completed`, read before and
after the window); latencies are measured by the clients. Progress goes to
stderr, the table and verdicts to stdout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from bench_server import bench_server

from bankapp.lab.reservoir import percentile

THROUGHPUT_TARGET = 0.9
REJECTION_P99_TARGET_MS = 5.0


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Client:
    """One keep-alive connection; reconnects if the server closes it."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if payload else {}
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=payload, headers=headers)
                response = self.connection.getresponse()
                return response.status, json.loads(response.read() or b"{}")
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def rank(samples: list[float], percent: float) -> float | None:
    """Nearest rank, as the server reports its own percentiles."""
    return percentile(Counter(samples), percent)


def closed_loop(url: str, clients: int, stop: threading.Event, measuring: threading.Event) -> tuple[dict, list]:
    """`clients` threads sending checkouts back to back until `stop`; latencies (ms) by status while `measuring`."""
    latencies: dict[int, list[float]] = {}
    tally = threading.Lock()

    def run():
        client = Client(url)
        while not stop.is_set():
            started = time.perf_counter()
            status, _ = client.call("POST", "/checkout", {"sku": "widget", "quantity": 1})
            elapsed = (time.perf_counter() - started) * 1000
            if measuring.is_set():
                with tally:
                    latencies.setdefault(status, []).append(elapsed)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return latencies, threads


def measure(url: str, settings: dict, clients: int, warmup: float, duration: float) -> dict:
    admin = Client(url)
    status, body = admin.call("PATCH", "/admin/config", settings)
    if status != 200:
        raise SystemExit(f"PATCH {settings} refused: {body.get('detail')}")
    admin.call("POST", "/admin/reset")
    stop, measuring = threading.Event(), threading.Event()
    latencies, threads = closed_loop(url, clients, stop, measuring)
    time.sleep(warmup)
    before = admin.call("GET", "/stats")[1]["checkout"]
    started = time.perf_counter()
    measuring.set()
    time.sleep(duration)
    measuring.clear()
    after = admin.call("GET", "/stats")[1]["checkout"]
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(30)
    ok, rejected = latencies.get(200, []), latencies.get(503, [])
    return {
        "settings": settings,
        "completed_per_s": (after["completed"] - before["completed"]) / elapsed,
        "rejected_per_s": (after["rejected"] - before["rejected"]) / elapsed,
        "peak_in_flight": after["peak_in_flight"],
        "ok_p50_ms": rank(ok, 50),
        "ok_p99_ms": rank(ok, 99),
        "rejection_p50_ms": rank(rejected, 50),
        "rejection_p99_ms": rank(rejected, 99),
        "rejections_measured": len(rejected),
        "other_statuses": {status: len(v) for status, v in latencies.items() if status not in (200, 503)},
    }


def rejection_latency(url: str, capacity: int, interval_ms: float, warmup: float, duration: float) -> dict:
    """Hold every permit; every `interval_ms` time a checkout (a 503) and a /healthz.

    The holders' checkouts take longer than the whole measurement, so no
    permit comes free and every probe is a rejection; no client spins.
    /healthz, timed by the same prober in the same moments, is the baseline:
    what any request costs on this machine now.
    """
    hold_ms = min(60_000, (warmup + duration + 1) * 1000)
    settings = {
        "checkout_guard": "semaphore",
        "capacity": capacity,
        "max_waiting": 0,
        "admission_timeout_ms": 0,
        "service_time_ms": hold_ms,
        "gateway_capacity": capacity,
    }
    admin = Client(url)
    admin.call("PATCH", "/admin/config", settings)
    admin.call("POST", "/admin/reset")
    holders = [
        threading.Thread(target=Client(url).call, args=("POST", "/checkout", {"sku": "widget", "quantity": 1}))
        for _ in range(capacity)
    ]
    for thread in holders:
        thread.start()
    time.sleep(warmup)
    prober = Client(url)
    rejected, admitted, health = [], 0, []
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        status, _ = prober.call("POST", "/checkout", {"sku": "widget", "quantity": 1})
        middle = time.perf_counter()
        health_status, _ = prober.call("GET", "/healthz")
        ended = time.perf_counter()
        if status == 503:
            rejected.append((middle - started) * 1000)
        else:
            admitted += 1
        if health_status == 200:
            health.append((ended - middle) * 1000)
        time.sleep(max(0.0, interval_ms / 1000 - (ended - started)))
    for thread in holders:
        thread.join(30)
    return {
        "settings": settings,
        "rejections_measured": len(rejected),
        "rejection_p50_ms": rank(rejected, 50),
        "rejection_p99_ms": rank(rejected, 99),
        "rejection_max_ms": max(rejected, default=None),
        "healthz_p50_ms": rank(health, 50),
        "healthz_p99_ms": rank(health, 99),
        "admitted_probes": admitted,
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds measured per configuration [%(default)s]")
    parser.add_argument("--warmup", type=float, default=1, help="seconds before measuring [%(default)s]")
    parser.add_argument("--clients", type=int, default=24, help="closed-loop client threads [%(default)s]")
    parser.add_argument("--capacity", type=int, default=8, help="semaphore permits [%(default)s]")
    parser.add_argument("--service-time-ms", type=float, default=50, help="gateway time per checkout [%(default)s]")
    parser.add_argument("--probe-interval-ms", type=float, default=5, help="between rejection probes [%(default)s]")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    little = args.capacity / (args.service_time_ms / 1000)
    common = {"service_time_ms": args.service_time_ms, "gateway_capacity": args.capacity, "lock_timeout_ms": 2000}
    queue = args.clients - args.capacity
    configs = [
        ("semaphore", {**common, "checkout_guard": "semaphore", "capacity": args.capacity, "max_waiting": queue,
                       "admission_timeout_ms": 1000}),
        ("semaphore, no wait", {**common, "checkout_guard": "semaphore", "capacity": args.capacity,
                                "max_waiting": 0, "admission_timeout_ms": 0}),
        ("unsafe", {**common, "checkout_guard": "unsafe"}),
        ("lock", {**common, "checkout_guard": "lock", "max_waiting": queue}),
    ]  # fmt: skip
    server = bench_server(threads=max(32, args.clients + 4))
    url = server.url
    rows = []
    try:
        total = len(configs) + 1
        for step, (label, settings) in enumerate(configs, start=1):
            progress(f"[{step}/{total}] {args.clients} clients, checkout under {label} ...")
            rows.append({"label": label, **measure(url, settings, args.clients, args.warmup, args.duration)})
        progress(f"[{total}/{total}] rejection latency: permits held, a probe every {args.probe_interval_ms:g} ms ...")
        rejection = rejection_latency(url, args.capacity, args.probe_interval_ms, args.warmup, args.duration)
    finally:
        server.stop()

    print(f"\nLittle's law limit: capacity {args.capacity} / service time {args.service_time_ms:g} ms = {little:.0f}/s")
    print(f"{args.clients} closed-loop clients, {args.duration:g} s each\n")
    print(f"{'guard':<20} {'done/s':>8} {'of limit':>9} {'503/s':>8} {'peak':>5} {'ok p50':>8} {'ok p99':>8}")
    for row in rows:
        print(
            f"{row['label']:<20} {row['completed_per_s']:>8.1f} {row['completed_per_s'] / little:>9.2f} "
            f"{row['rejected_per_s']:>8.1f} {row['peak_in_flight']:>5} {fmt(row['ok_p50_ms']):>8} "
            f"{fmt(row['ok_p99_ms']):>8}"
        )
    semaphore = rows[0]
    ratio = semaphore["completed_per_s"] / little
    print(
        f"\nsemaphore admitted {semaphore['completed_per_s']:.1f} checkouts/s = {ratio:.2f} of the limit "
        f"({'meets' if ratio >= THROUGHPUT_TARGET else 'MISSES'} the {THROUGHPUT_TARGET} target)"
    )
    p99 = rejection["rejection_p99_ms"]
    verdict = "meets" if p99 is not None and p99 < REJECTION_P99_TARGET_MS else "MISSES"
    print(
        f"rejection with admission_timeout_ms 0: p50 {fmt(rejection['rejection_p50_ms'], 2)} ms, "
        f"p99 {fmt(p99, 2)} ms over {rejection['rejections_measured']} rejections "
        f"({verdict} the {REJECTION_P99_TARGET_MS:g} ms target)"
    )
    print(
        f"/healthz timed by the same prober: p50 {fmt(rejection['healthz_p50_ms'], 2)} ms, "
        f"p99 {fmt(rejection['healthz_p99_ms'], 2)} ms (the cost of any request on this machine now)"
    )
    if args.json:
        args.json.write_text(json.dumps({"little_limit_per_s": little, "rows": rows, "rejection": rejection}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
