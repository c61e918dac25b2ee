"""One open-loop point: requests at a fixed arrival rate, each timed from when it was due.

A closed loop (Locust, whatever its wait time: `constant_pacing` too) sends
a user's next request only after the last answer came back. When the server
stalls, the generator stalls with it and sends nothing meanwhile, so the
stall is measured once, by the one request caught in it: coordinated
omission (Gil Tene's name for it), and p99 under overload looks far better
than what arriving customers get. wrk2 and vegeta send on a fixed schedule
instead, request i being due at start + i / rate, and time each request
from when it was due, not from when it was sent: a request sent late
because the generator had no free connection counts its lateness too.

No well-kept Python library does this (Locust, molotov and locust-plugins
are closed loops; wrk2 and vegeta are C and Go programs, not packaged for
this machine's Python), so this is a small one: `senders` threads, each with
its own keep-alive connection (`http.client`), take the next due time from
one shared counter, sleep until it, send, and record (due, answered, status).
A request starting more than `LATE_S` after it was due shows the generator
itself fell behind: their share is reported, and a point where it is large
is flagged as saturated, as a busy Locust is in the closed loop.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from ..lab.reservoir import percentile
from .closed import SATURATED_CPU

#: A send this late (s) means no sender was free when the request was due.
LATE_S = 0.010
#: Seconds a sender waits for an answer before it counts the request as an error.
REQUEST_TIMEOUT_S = 10.0


def request_for(scenario: str, accounts: list[str], weights: list[float]) -> tuple[str, dict]:
    """(path, body) of one request of the scenario, its account(s) drawn by the keys' weights."""
    if scenario == "checkout":
        return "/checkout", {"sku": "widget", "quantity": 1}
    if scenario == "transfer":
        source, target = random.sample(accounts, 2) if len(accounts) > 1 else (accounts[0], accounts[0])
        return "/transfers", {"from": source, "to": target, "amount": 1}
    (account,) = random.choices(accounts, weights)
    return f"/accounts/{account}/deposit", {"amount": 1}


class Sender(threading.Thread):
    def __init__(self, schedule: OpenLoop):
        super().__init__(name="bankapp-openloop", daemon=True)
        self.schedule = schedule
        self.results: list[tuple[float, float, int]] = []  # (due, latency s, status; 0: no answer)
        self.late = 0

    def run(self) -> None:
        plan = self.schedule
        host = urlsplit(plan.url)
        connection = http.client.HTTPConnection(host.hostname, host.port, timeout=REQUEST_TIMEOUT_S)
        try:
            while (due := plan.next_due()) is not None:
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                elif -pause > LATE_S:
                    self.late += 1
                path, body = request_for(plan.scenario, plan.accounts, plan.weights)
                try:
                    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    connection.close()  # reconnects on the next request
                    status = 0
                self.results.append((due, time.perf_counter() - due, status))
        finally:
            connection.close()


class OpenLoop:
    """`rate` requests per second for `warmup + duration` seconds; the warm-up's requests are left out."""

    def __init__(self, url, scenario, rate, *, duration, warmup, accounts, weights, senders=128):
        self.url, self.scenario, self.rate = url, scenario, rate
        self.duration, self.warmup = duration, warmup
        self.accounts, self.weights = accounts, weights
        self.senders = senders
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.start = 0.0

    def next_due(self) -> float | None:
        with self._lock:
            index = next(self._counter)
        due = self.start + index / self.rate
        return None if due >= self.start + self.warmup + self.duration else due

    def run(self) -> dict:
        threads = [Sender(self) for _ in range(self.senders)]
        cpu_before = time.process_time()
        self.start = time.perf_counter() + 0.05
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.warmup + self.duration + REQUEST_TIMEOUT_S + 30)
        wall = time.perf_counter() - self.start
        measured_from = self.start + self.warmup
        results = [result for thread in threads for result in thread.results if result[0] >= measured_from]
        late = sum(thread.late for thread in threads)
        return summarize(results, self.duration, late, (time.process_time() - cpu_before) / max(wall, 1e-9))


def summarize(results: list[tuple[float, float, int]], seconds: float, late: int, cpu: float) -> dict:
    # p50 and p99 of the completed (200), timed from when each was due; p99_all_ms of every answer
    histogram: Counter[float] = Counter(round(latency * 1000) for _, latency, status in results if status == 200)
    every: Counter[float] = Counter(round(latency * 1000) for _, latency, _ in results)
    completed = sum(1 for *_, status in results if status == 200)
    errors = sum(1 for *_, status in results if status == 0 or (status >= 500 and status != 503))
    requests = len(results)
    late_share = late / requests if requests else 0.0
    return {
        "requests": requests,
        "completed": completed,
        "errors": errors,
        "refused": requests - completed - errors,
        "measured_s": seconds,
        "requests_per_s": requests / seconds,
        "completed_per_s": completed / seconds,
        "errors_per_s": errors / seconds,
        "mean_ms": sum(latency for _, latency, _ in results) * 1000 / requests if requests else 0.0,
        "p50_ms": percentile(histogram, 50) or 0.0,
        "p99_ms": percentile(histogram, 99) or 0.0,
        "p99_all_ms": percentile(every, 99) or 0.0,
        "late_share": late_share,
        "generator_cpu": cpu,
        "generator_saturated": cpu >= SATURATED_CPU or late_share > 0.05,
    }
