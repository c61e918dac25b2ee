"""One lab's run as a bounded time series: one sample of what the dashboard charts per second at most.

A sample is taken lazily (see `history.hooks`): when `/stats` or
`/dashboard/history` is read, and after the answer of any other request has
been sent, whenever a second has passed since the last one. So an idle
server takes none, no thread is started for it (the dashboard shows
`threading.active_count()`: a sampler thread would be one more in the
lesson), and no request waits for one.

The counters are kept as the server counts them (cumulative), the gauges as
they were; the page computes rates between samples as it does live. When a
counter goes down the lab was reset (here, by another worker or by a room's
"reset all"): the history starts again from that sample, as it does after a
`POST /admin/reset` this worker answered.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

#: Samples kept: an hour at one a second. A sample is 18 numbers, so the whole history is ~0.5 MB of JSON.
CAPACITY = 3600
#: The least time between two samples, in seconds.
INTERVAL_S = 1.0
#: What each sample holds, in order: the columns of `/dashboard/history`.
COLUMNS = (
    "t",  # epoch seconds
    "acknowledged",  # deposits acknowledged (count)
    "balance_change",  # cents: what the balances moved since the opening
    "lost_updates",  # cents
    "in_flight",  # checkouts
    "waiting",
    "limit",  # the checkout's admission limit (capacity, or the adaptive limit); null: no limit
    "gateway_capacity",
    "admitted",
    "rejected",
    "latency_p50_ms",
    "latency_p99_ms",
    "committed",  # transfers
    "deadlocks",
    "total",  # cents in the bank
    "expected_total",
    "requests",  # requests this worker answered for this lab since the history began
)
#: The settings a sample notes, so the page marks where one flipped.
SETTINGS = ("deposit_guard", "deposit_permits", "checkout_guard", "transfer_policy", "race_window_ms")
#: Settings changes kept (each a marker on the charts).
CHANGES = 200


def row(stats: dict[str, Any], t: float, requests: int) -> tuple:
    """The sample of one `/stats` answer (without its `served_by`)."""
    d, c, x = stats["deposits"], stats["checkout"], stats["transfers"]
    latency = c.get("latency_ms") or {}
    limit = c.get("limit", c.get("capacity"))
    return (
        round(t, 3),
        d["acknowledged"],
        d["balance_change"],
        d["lost_updates"],
        c.get("in_flight"),
        c.get("waiting"),
        limit,
        c.get("gateway_capacity"),
        c.get("admitted"),
        c.get("rejected"),
        latency.get("p50"),
        latency.get("p99"),
        x.get("committed"),
        x.get("deadlocks"),
        x.get("total"),
        x.get("expected_total"),
        requests,
    )


def counted(stats: dict[str, Any]) -> int:
    """Counters that only a reset lowers."""
    c, x = stats["checkout"], stats["transfers"]
    return stats["deposits"]["acknowledged"] + c.get("admitted", 0) + c.get("rejected", 0) + x.get("committed", 0)


class History:
    """The bounded samples of one lab in this process, under a small lock of their own (never a guard)."""

    def __init__(self, capacity: int | None = None, interval_s: float | None = None):
        self.capacity = CAPACITY if capacity is None else capacity
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self._lock = threading.Lock()
        self._requests = 0  # a plain int: `+= 1` under the GIL may lose a count, never corrupt one
        self._samples: deque[tuple] = deque(maxlen=self.capacity)
        self._changes: deque[dict[str, Any]] = deque(maxlen=CHANGES)
        self.resets = -1  # resets seen: `clear` counts one, and this first one makes it 0
        self.clear()

    def clear(self) -> None:
        """Forget the run: the lab was reset (by this worker: `POST /admin/reset`)."""
        with self._lock:
            self._forget()
            self._latest: dict[str, Any] | None = None
            self._counted = 0
            self._next = 0.0  # monotonic time of the next sample due

    def _forget(self) -> None:
        """Under the lock: the run so far is gone, a new one starts."""
        self._samples.clear()
        self._changes.clear()
        self._seen: set[tuple] = set()  # the charted settings seen since the reset, each as a tuple of `SETTINGS`
        self._settings: dict[str, Any] | None = None
        self.started_at: float | None = None
        self.resets += 1

    def requested(self) -> bool:
        """One more request answered; True when a sample is due (the caller then calls `record`)."""
        self._requests += 1
        return time.monotonic() >= self._next

    def due(self) -> bool:
        """Whether a second has passed since the last sample."""
        return time.monotonic() >= self._next

    def record(self, stats: dict[str, Any], now: float | None = None) -> bool:
        """Note `stats` as the latest; append it as a sample when one is due. True when appended."""
        now = time.time() if now is None else now
        with self._lock:
            if counted(stats) < self._counted:  # reset elsewhere: start again from here
                self._forget()
            self._counted = counted(stats)
            self._latest = stats
            settings = {name: stats["settings"].get(name) for name in SETTINGS}
            self._seen.add(tuple(settings.values()))
            if settings != self._settings:
                self._changes.append({"t": round(now, 3), **settings})
                self._settings = settings
            if time.monotonic() < self._next:
                return False
            self._next = time.monotonic() + self.interval_s
            self._samples.append(row(stats, now, self._requests))
            if self.started_at is None:
                self.started_at = round(now, 3)
            return True

    def report(self, since: float | None = None) -> dict[str, Any]:
        """The samples (those after `since`, if given) as columns, the settings changes, and where the money went."""
        with self._lock:
            samples = [s for s in self._samples if since is None or s[0] > since]
            changes = [c for c in self._changes if since is None or c["t"] > since]
            latest, seen = self._latest, set(self._seen)
            first = self._samples[0][0] if self._samples else None
        return {
            "now": round(time.time(), 3),  # the server's clock: the page draws its own points on it
            "interval_s": self.interval_s,
            "capacity": self.capacity,
            "started_at": self.started_at,
            "first": first,
            "resets": self.resets,
            "columns": list(COLUMNS),
            "samples": len(samples),
            "series": {name: [s[i] for s in samples] for i, name in enumerate(COLUMNS)},
            "settings": changes,
            "money": money(latest, seen) if latest is not None else None,
        }


def suspects(seen: Iterable[tuple]) -> tuple[str, str]:
    """Which settings seen since the history began let deposits, and transfers, lose money (as the verdict says)."""
    deposits = transfers = ""
    for guard, permits, _checkout, policy, _window in seen:
        if guard == "unsafe":
            deposits = "deposit_guard unsafe"
        elif guard == "semaphore" and (permits or 1) > 1 and not deposits:
            deposits = f"deposit_guard semaphore with deposit_permits {permits}"
        if policy == "unsafe":
            transfers = "transfer_policy unsafe"
    return deposits, transfers


def money(stats: dict[str, Any], seen: Iterable[tuple]) -> dict[str, Any]:
    """The bank's total change split into who made it.

    The total moved by `total_change`: deposits net of withdrawals were
    acknowledged `deposits`; the rest (`off`, the total less what it should
    be) is money in the middle of a transfer (`in_flight`, back at rest)
    and money lost (`lost_updates`). The lost money is blamed as Locust's
    verdict blames it: on deposits when a guard that does not exclude was in
    force for them (they write without the account locks transfers take),
    on transfers when `transfer_policy` was `unsafe` (no lock at all), on
    either when both were, and on nothing any setting explains otherwise.
    """
    d, x = stats["deposits"], stats["transfers"]
    off = x["total"] - x["expected_total"]
    lost = d["lost_updates"]
    by_deposits, by_transfers = suspects(seen)
    blame = {"deposits": 0, "transfers": 0, "either": 0, "unexplained": 0}
    key = (
        ("either" if by_transfers else "deposits") if by_deposits else ("transfers" if by_transfers else "unexplained")
    )
    blame[key] = -lost
    return {
        "total_change": d["balance_change"],
        "deposits": d["balance_change"] - off,  # the expected total less the opening one
        "off": off,
        "in_flight": off + lost,
        "lost_updates": lost,
        "lost_by": blame,
        "deposits_could_lose": by_deposits or None,
        "transfers_could_lose": by_transfers or None,
    }
