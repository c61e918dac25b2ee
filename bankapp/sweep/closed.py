"""One closed-loop point: N Locust users for warm-up + duration seconds, the warm-up left out.

Locust (headless, in a process of its own, as `bankapp compare` runs it)
drives the scenario's user class; `--warmup` resets its statistics once the
warm-up is over (see `loadtests.pacing`), so completed/s, the percentiles
and the mean response time are those of the measured seconds only.

Locust's own CPU is read from the kernel's account of the children this
process has waited for (`resource.getrusage(RUSAGE_CHILDREN)`), before and
after the run: Locust runs its users on one gevent loop, so a CPU share near
one core means it, not the server, was the limit, and the point is flagged
`generator_saturated`. The server's CPU (gunicorn's master and workers) is
read with psutil over the same run.
"""

from __future__ import annotations

import math
import resource
import time
from collections import Counter
from pathlib import Path

import psutil

from ..compare.locust_runs import LocustJob, project_locustfile, run_locust
from ..lab.reservoir import percentile
from .stats import littles_law

#: Locust's user class per scenario, and the request names whose successes are completed operations.
USER_CLASS = {"deposit": "DepositUser", "checkout": "CheckoutUser", "transfer": "TransferUser"}
COMPLETED_NAME = {"deposit": "deposit", "checkout": "checkout", "transfer": "transfer"}


class SweepError(Exception):
    """A sweep that cannot go on; the message says why."""


#: A generator busier than this share of one core is taken as the bottleneck.
SATURATED_CPU = 0.9


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu_s(pid: int) -> float:
    """CPU seconds of the server's process tree so far (gunicorn's master and its workers)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def summarize(entries: list[dict], scenario: str) -> dict:
    """Counts, rates and percentiles over the measured window, from Locust's final JSON stats.

    p50 and p99 are those of the completed operations' requests: a refusal
    in a millisecond (an admission 503) would otherwise pull them down just
    when the guard is turning most customers away. `p99_all_ms` counts every answer.
    """
    name = COMPLETED_NAME[scenario]
    histogram: Counter[float] = Counter()
    every: Counter[float] = Counter()
    for entry in entries:
        for millis, count in entry["response_times"].items():
            every[float(millis)] += count
            if entry["name"] == name:
                histogram[float(millis)] += count
    requests = sum(entry["num_requests"] for entry in entries)
    failures = sum(entry["num_failures"] for entry in entries)
    total_ms = sum(entry["total_response_time"] for entry in entries)
    began = min((entry["start_time"] for entry in entries), default=0.0)
    ended = max((entry["last_request_timestamp"] or 0 for entry in entries), default=0.0)
    seconds = max(ended - began, 1e-9)
    completed = sum(entry["num_requests"] - entry["num_failures"] for entry in entries if entry["name"] == name)
    return {
        "requests": requests,
        "completed": completed,
        "errors": failures,
        "refused": requests - completed - failures,  # answered as the business intends: rejected, out of stock
        "measured_s": seconds,
        "requests_per_s": requests / seconds,
        "completed_per_s": completed / seconds,
        "errors_per_s": failures / seconds,
        "mean_ms": total_ms / requests if requests else 0.0,
        "p50_ms": percentile(histogram, 50) or 0.0,
        "p99_ms": percentile(histogram, 99) or 0.0,
        "p99_all_ms": percentile(every, 99) or 0.0,
    }


def summarize_nothing(duration: float) -> dict:
    zero = dict.fromkeys(("requests", "completed", "errors", "refused"), 0)
    rates = dict.fromkeys(("requests_per_s", "completed_per_s", "errors_per_s", "mean_ms", "p50_ms", "p99_ms"), 0.0)
    return {**zero, "measured_s": duration, **rates, "p99_all_ms": 0.0}


def measure(
    url: str,
    server_pid: int,
    scenario: str,
    users: int,
    *,
    duration: float,
    warmup: float,
    think_s: float,
    accounts: str,
    prefix: Path,
) -> dict:
    """Run one point; its numbers, Little's law and the CPU shares."""
    job = LocustJob(
        project_locustfile(),
        [USER_CLASS[scenario]],
        url,
        users=users,
        duration=math.ceil(warmup + duration),  # Locust takes whole seconds; the measured time is read back
        prefix=prefix,
        verdict=False,
        extra=(
            *("--warmup", f"{warmup:g}", "--think-time", f"{think_s:g}"),
            *("--accounts", accounts, "--skus", "widget", "--amounts", "1"),
            *("--stop-timeout", "5", "--loglevel", "WARNING"),
        ),
    )
    cpu_before, server_before, began = children_cpu_s(), server_cpu_s(server_pid), time.monotonic()
    run = run_locust(job)
    wall = time.monotonic() - began
    generator_cpu = (children_cpu_s() - cpu_before) / wall
    server_cpu = (server_cpu_s(server_pid) - server_before) / wall
    if not job.path(".stats.json").exists():
        raise SweepError(f"Locust left no statistics for {prefix.name}; its log is {job.path('.log')}")
    # an empty list: no request finished in the measured window (every user stuck, say): a point of nothing done
    point = summarize(run.stats, scenario) if run.stats else summarize_nothing(duration)
    little = littles_law(users, point["requests_per_s"], point["mean_ms"] / 1000, think_s)
    return {
        **point,
        "little": little,
        "generator_cpu": generator_cpu,
        "server_cpu": server_cpu,
        "generator_saturated": generator_cpu >= SATURATED_CPU,
    }
