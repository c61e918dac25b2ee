"""Does the dashboard disturb a benchmark? Deposits/s with and without N open dashboards.

    python benchmarks/dashboard_polling.py [--pollers 1,5,20] [--duration 5] [--rounds 3]

Starts `bankapp serve --race-window-ms 0` on a free loopback port and drives
`POST /accounts/<random>/deposit` (under `--guard`, `lock` by default) with
wrk, first alone, then with N pollers running: plain HTTP clients (one
keep-alive session each) that read what the page reads, `/stats`,
`/debug/locks`, `/debug/races`, `/debug/explore` and the newest part of
`/dashboard/history`, once a second. Each round measures deposits
alone, with each N, and alone again; each N is compared with the mean of
the two alone runs of its own round (seconds apart, so a noisy neighbour
hits both sides), and the median of those ratios is reported. Target: a
dashboard or a few cost no more than a few per cent of deposits/s.

On a machine shared with other work, throughput swings by more than the
pollers could cost, so it also measures what the noise touches least: the
server's own CPU time (its process tree, from psutil) per deposit, with and
without the pollers; its ratio is the share of the server's capacity left
to deposits. And it prints how long the pollers waited for their answers
under load and, from the server's latency histogram (`/metrics`), how much
server time one poll takes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests
from bench_server import bench_server
from deposit_guards import DEPOSIT_LUA, send, wrk
from prometheus_client.parser import text_string_to_metric_families

#: What the page's script fetches on every poll.
POLLED = ("/stats", "/debug/locks", "/debug/races?limit=1", "/debug/explore", "/dashboard/history?since={since}")
ROUTES = tuple(path.partition("?")[0] for path in POLLED)
DEPOSIT_ROUTE = "/accounts/<account_id>/deposit"


class Pollers:
    """N threads, each reading `POLLED` once a second until stopped; their answer times kept."""

    def __init__(self, url: str, count: int):
        self.url = url
        self.stop = threading.Event()
        self.times_ms: list[float] = []
        self.failures = 0
        self.threads = [threading.Thread(target=self._poll, args=(i,), daemon=True) for i in range(count)]

    def _poll(self, index: int) -> None:
        with requests.Session() as session:
            self.stop.wait(index / max(1, len(self.threads)))  # pages opened at different moments
            while not self.stop.is_set():
                started = time.perf_counter()
                for path in POLLED:
                    try:
                        polled = path.format(since=time.time() - 1)  # the page asks for what came after its last
                        if session.get(self.url + polled, timeout=10).status_code != 200:
                            self.failures += 1
                    except requests.RequestException:
                        self.failures += 1
                elapsed = time.perf_counter() - started
                self.times_ms.append(elapsed * 1000)
                self.stop.wait(max(0.0, 1.0 - elapsed))

    def __enter__(self) -> Pollers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def server_ms_per_poll(url: str) -> dict[str, float]:
    """Mean server time of each polled route, from the latency histogram (sum / count)."""
    totals: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(requests.get(url + "/metrics", timeout=10).text):
        if family.name != "bankapp_http_request_duration_seconds":
            continue
        for sample in family.samples:
            route = sample.labels.get("route")
            if route in (*ROUTES, DEPOSIT_ROUTE) and sample.name.endswith(("_sum", "_count")):
                totals.setdefault(route, {})[sample.name.rpartition("_")[2]] = sample.value
    return {route: 1000 * t["sum"] / t["count"] for route, t in totals.items() if t.get("count")}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children (gunicorn's master and worker)."""
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pollers", default="1,5,20", help="numbers of open dashboards to try [%(default)s]")
    parser.add_argument("--guard", default="lock", help="deposit_guard under test [%(default)s]")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement [%(default)s]")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections [%(default)s]")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians reported [%(default)s]")
    args = parser.parse_args()
    counts = [int(n) for n in args.pollers.split(",")]
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(DEPOSIT_LUA)
    server = bench_server()
    url = server.url
    alone: list[tuple[float, float]] = []  # (deposits/s, server CPU us per deposit)
    polled: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
    ratios: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}  # (throughput, capacity) ratios
    waits: dict[int, list[float]] = {n: [] for n in counts}
    failures = 0

    def deposits(label: str) -> tuple[float, float]:
        nonlocal step
        step += 1
        print(f"[{step}/{steps}] deposits, {label} ...", file=sys.stderr, flush=True)
        send(url + "/admin/reset", "POST")
        cpu = cpu_seconds(server.pid)
        rps = wrk(url, args.duration, args.connections, server.pid, script.name)["rps"]
        return rps, (cpu_seconds(server.pid) - cpu) * 1e6 / (rps * args.duration)

    try:
        send(url + "/admin/config", "PATCH", {"deposit_guard": args.guard})
        steps, step = args.rounds * (2 + len(counts)), 0
        for _ in range(args.rounds):
            before = deposits("no dashboard")
            this_round = {}
            for count in counts:
                with Pollers(url, count) as pollers:
                    time.sleep(1)  # every poller has started
                    this_round[count] = deposits(f"{count} dashboards polling")
                waits[count] += pollers.times_ms
                failures += pollers.failures
            after = deposits("no dashboard")
            alone += [before, after]
            base_rps, base_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
            for count, (rps, cpu) in this_round.items():
                polled[count].append((rps, cpu))
                ratios[count].append((rps / base_rps, base_cpu / cpu))
        per_poll = server_ms_per_poll(url)
    finally:
        server.stop()
        Path(script.name).unlink(missing_ok=True)
    print(f"\ndeposit under {args.guard}: {args.rounds} rounds of {args.duration} s, {args.connections} connections")
    print(
        f"{'dashboards':>10} {'req/s':>7} {'vs none':>7}  {'CPU us/dep':>10} {'capacity':>8}  "
        f"{'poll p50 ms':>11} {'poll max ms':>11}  per round: req/s ratio, capacity ratio"
    )
    median = statistics.median
    print(f"{0:>10} {median(r for r, _ in alone):>7.0f} {1:>7.3f}  {median(c for _, c in alone):>10.0f} {1:>8.3f}")
    for count in counts:
        p50 = median(waits[count]) if waits[count] else float("nan")
        worst = max(waits[count], default=float("nan"))
        rounds = "  ".join(f"{r:.2f},{c:.3f}" for r, c in ratios[count])
        print(
            f"{count:>10} {median(r for r, _ in polled[count]):>7.0f} {median(r for r, _ in ratios[count]):>7.3f}  "
            f"{median(c for _, c in polled[count]):>10.0f} {median(c for _, c in ratios[count]):>8.3f}  "
            f"{p50:>11.1f} {worst:>11.1f}  {rounds}"
        )
    deposit_ms = per_poll.pop(DEPOSIT_ROUTE)
    one_poll = sum(per_poll.values())
    routes = ", ".join(f"{route} {ms:.2f}" for route, ms in per_poll.items())
    print(f"\npolls that failed: {failures}")
    print(f"server time under load: one poll {one_poll:.2f} ms ({routes}); one deposit {deposit_ms:.2f} ms")
    base = median(r for r, _ in alone)
    for count in counts:
        share = count * one_poll / deposit_ms / base
        print(
            f"  {count} dashboards: {count * one_poll:.1f} ms of server time per second, as much as "
            f"{count * one_poll / deposit_ms:.0f} deposits, {share:.2%} of {base:.0f} deposits/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
