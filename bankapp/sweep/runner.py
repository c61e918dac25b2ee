"""The sweep: one server, each guard in turn, each level R times, then a fit per guard.

As `bankapp compare` does, one `bankapp serve` runs on a free loopback port
(with `--store postgres`, a fleet of `--workers` processes on one database);
each guard is switched in with `PATCH /admin/config` and every repeat starts
from `POST /admin/reset` (Locust's referee sends it; the open loop sends it
itself), so no repeat inherits another's balances, stock or counters.

A *series* is one guard (at one race window, when several are swept): its
levels, each with its repeats and their summary, and its USL fit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ..compare.locust_runs import check_locust
from ..compare.matrix import BASE_SETTINGS
from ..server.processes import ServerProcess
from . import closed, openloop, usl
from .closed import SweepError
from .levels import DEFAULT_USERS, Keys, parse_keys
from .stats import interval

#: Guards swept when --guards is not given, per store and scenario.
DEFAULT_GUARDS = {
    ("memory", "deposit"): ["unsafe", "lock", "semaphore(4)"],
    ("memory", "checkout"): ["unsafe", "lock", "semaphore", "adaptive"],
    ("memory", "transfer"): ["naive", "ordered", "backoff"],
    ("postgres", "deposit"): ["row-lock", "advisory-lock", "atomic-update", "serializable"],
    ("postgres", "checkout"): ["advisory-lock", "advisory-semaphore"],
    ("postgres", "transfer"): ["ordered", "backoff"],
}


@dataclass
class Sweep:
    """Options of one sweep."""

    scenario: str = "deposit"
    guards: list[str] | None = None
    users: list[int] = field(default_factory=lambda: list(DEFAULT_USERS))
    rates: list[float] | None = None  # open loop when given
    keys: Keys = field(default_factory=lambda: parse_keys("spread"))
    repeat: int = 5
    duration: float = 5.0
    warmup: float = 1.0
    think_ms: float = 0.0
    race_windows: list[float] | None = None
    store: str = "memory"
    database_url: str | None = None
    workers: int = 1
    out: Path | None = None

    @property
    def open_loop(self) -> bool:
        return self.rates is not None

    @property
    def levels(self) -> list[float]:
        return list(self.rates) if self.rates is not None else [float(users) for users in self.users]

    def chosen_guards(self) -> list[str]:
        return self.guards or DEFAULT_GUARDS[(self.store, self.scenario)]

    def series_labels(self) -> list[tuple[str, float | None]]:
        windows: list[float | None] = [*self.race_windows] if self.race_windows else [None]
        return [(guard, window) for guard in self.chosen_guards() for window in windows]

    def runs(self) -> int:
        return len(self.series_labels()) * len(self.levels) * self.repeat

    def server_flags(self) -> list[str]:
        flags = ["--threads", "64", "--max-waiting", "16"]
        if self.store == "postgres":
            flags += ["--store", "postgres", "--database-url", self.database_url or "", "--workers", str(self.workers)]
        return flags


def settings_for(scenario: str, guard: str, race_window: float | None) -> dict:
    """The `PATCH /admin/config` body of one series: `semaphore(4)` is a deposit semaphore of 4 permits."""
    if scenario == "deposit":
        name, _, permits = guard.partition("(")
        chosen = {"deposit_guard": name, "deposit_permits": int(permits.rstrip(")") or 1)}
    elif scenario == "checkout":
        chosen = {"checkout_guard": guard}
    else:
        chosen = {"transfer_policy": guard}
    if race_window is not None:
        chosen["race_window_ms"] = race_window
    return {**BASE_SETTINGS, **chosen}


def series_name(guard: str, race_window: float | None) -> str:
    return guard if race_window is None else f"{guard} @ {race_window:g} ms"


def call(url: str, method: str, path: str, **kwargs) -> dict:
    response = requests.request(method, url + path, timeout=30, **kwargs)
    if response.status_code >= 400:
        raise SweepError(f"{method} {path} answered {response.status_code}: {response.text}")
    return response.json()


def server_view(scenario: str, stats: dict) -> dict:
    """What the server counted in one repeat: lost updates, serializable's retries, the adaptive limit."""
    deposits = stats.get("deposits", {})
    acknowledged = deposits.get("acknowledged", 0)
    retries = deposits.get("serialization_retries", 0)
    checkout = stats.get("checkout", {})
    return {
        "lost_updates": deposits.get("lost_updates", 0) if scenario == "deposit" else 0,
        "serialization_retries": retries,
        "retry_rate": retries / acknowledged if acknowledged else 0.0,
        "limit": checkout.get("limit") if scenario == "checkout" else None,
        "oversold": checkout.get("oversold", 0) if scenario == "checkout" else 0,
    }


def measure_once(sweep: Sweep, url: str, pid: int, level: float, prefix: Path) -> dict:
    if sweep.open_loop:
        call(url, "POST", "/admin/reset")
        server_before, began = closed.server_cpu_s(pid), time.monotonic()
        point = openloop.OpenLoop(
            url,
            sweep.scenario,
            level,
            duration=sweep.duration,
            warmup=sweep.warmup,
            accounts=sweep.keys.accounts,
            weights=list(sweep.keys.weights),
        ).run()
        point["server_cpu"] = (closed.server_cpu_s(pid) - server_before) / (time.monotonic() - began)
        point["little"] = None
    else:
        point = closed.measure(
            url,
            pid,
            sweep.scenario,
            int(level),
            duration=sweep.duration,
            warmup=sweep.warmup,
            think_s=sweep.think_ms / 1000,
            accounts=sweep.keys.locust_accounts(),
            prefix=prefix,
        )
    point["server"] = server_view(sweep.scenario, call(url, "GET", "/stats"))
    return point


def summarize_level(level: float, repeats: list[dict]) -> dict:
    littles = [point["little"]["relative"] for point in repeats if point.get("little")]
    return {
        "level": level,
        "completed_per_s": interval([point["completed_per_s"] for point in repeats]),
        "p50_ms": interval([point["p50_ms"] for point in repeats]),
        "p99_ms": interval([point["p99_ms"] for point in repeats]),
        "errors_per_s": interval([point["errors_per_s"] for point in repeats]),
        "little_relative": interval(littles) if littles else None,
        "generator_cpu": max(point["generator_cpu"] for point in repeats),
        "server_cpu": max(point["server_cpu"] for point in repeats),
        "generator_saturated": any(point["generator_saturated"] for point in repeats),
        "retry_rate": interval([point["server"]["retry_rate"] for point in repeats]),
        "repeats": repeats,
    }


def fit_series(levels: list[dict], open_loop: bool) -> dict | None:
    """The USL through every repeat (closed loop only: the open loop's x is a rate, not a number of users)."""
    if open_loop:
        return None
    ns = [level["level"] for level in levels for _ in level["repeats"]]
    xs = [point["completed_per_s"] for level in levels for point in level["repeats"]]
    result = usl.fit(ns, xs)
    return result.as_dict() if result else None


def execute(sweep: Sweep, progress: Callable[[int, int, str], None]) -> tuple[dict, Path]:
    """Run every series; return the results (the shape of results.json) and the report folder."""
    if not sweep.open_loop:
        check_locust()
    folder = sweep.out or Path("reports") / ("sweep-" + time.strftime("%Y%m%d-%H%M%S"))
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    total, done = sweep.runs(), 0
    series: list[dict] = []
    began = time.monotonic()
    with ServerProcess(*sweep.server_flags(), log=raw / "server.log") as server:
        for guard, window in sweep.series_labels():
            name = series_name(guard, window)
            call(server.url, "PATCH", "/admin/config", json=settings_for(sweep.scenario, guard, window))
            levels = []
            for level in sweep.levels:
                repeats = []
                for repeat in range(sweep.repeat):
                    progress(done, total, f"{name}, {level:g} {'req/s' if sweep.open_loop else 'users'}")
                    prefix = raw / f"{name}-{level:g}-{repeat}".replace(" ", "").replace("(", "-").replace(")", "")
                    repeats.append(measure_once(sweep, server.url, server.pid, level, prefix))
                    done += 1
                levels.append(summarize_level(level, repeats))
            series.append(
                {
                    "guard": guard,
                    "race_window_ms": window,
                    "name": name,
                    "levels": levels,
                    "fit": fit_series(levels, sweep.open_loop),
                }
            )
    progress(done, total, "done")
    return {
        "scenario": sweep.scenario,
        "store": sweep.store,
        "workers": sweep.workers,
        "loop": "open" if sweep.open_loop else "closed",
        "keys": sweep.keys.name,
        "repeat": sweep.repeat,
        "duration_s": sweep.duration,
        "warmup_s": sweep.warmup,
        "think_ms": sweep.think_ms,
        "confidence": 0.95,
        "elapsed_s": time.monotonic() - began,
        "series": series,
    }, folder
