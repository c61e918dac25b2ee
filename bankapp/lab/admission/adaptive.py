"""The `adaptive` checkout guard: an admission limit found at run time from latency.

A semaphore needs the right number: too few permits and the gateway idles,
too many and every checkout queues inside it (Little's law: the same
payments per second, each one slower). This guard finds the number itself,
as TCP Vegas finds a congestion window: it watches how long admitted
checkouts take, and reads a rise over the quickest time it has seen as a
queue forming downstream.

Source: Netflix's concurrency-limits, `VegasLimit`
(concurrency-limits-core/src/main/java/com/netflix/concurrency/limits/limit/VegasLimit.java,
Apache 2.0), with its `WindowedLimit` sampling; written again here in Python, smaller:

- `rtt_noload`: the quickest single checkout seen since the start (or the
  last reset): the time without a queue. It only falls (Vegas's BaseRTT).
- every window (at least `window_samples` checkouts and `window_s`
  seconds) takes the window's median time `rtt` and estimates the queue as
  `queue = limit * (1 - rtt_noload / rtt)`: with `limit` checkouts inside
  a gateway of G places, `rtt = rtt_noload * limit / G`, so `queue = limit - G`.
- `queue < alpha`: one more (+1); `queue > beta`: one fewer (-1); between,
  the limit holds. A window in which fewer than half the limit were in
  flight says nothing about the limit (the load, not the limit, held them
  back): it changes nothing (Vegas's "app-limited" rule).

The parameters differ from Netflix's: alpha = max(1, 0.1 x limit) and
beta = max(2, 0.3 x limit) (Netflix: 3 and 6 x log10(limit)), so the queue
kept is a share of the limit and the limit settles near 1.1 to 1.4 x G for
any G, between G - 1 and 2G. It is bounded by `min_limit` (1) and
`max_limit` (threads - reserve - max_waiting, so the thread budget holds).

What it does not do: Netflix re-probes `rtt_noload` now and then, which a
lasting overload turns into a ratchet upwards; here a slower gateway
(`service_time_ms` raised) needs `POST /admin/reset`, which restarts the
limit at `capacity` and forgets `rtt_noload`. The limit is per worker: each
gunicorn worker measures its own checkouts (documented in docs/sweeps.md).

Example::

    limit = VegasLimit(initial=8, max_limit=46)
    limit.sample(rtt_s=0.051, in_flight=8)  # after each checkout; limit.limit moves once per window
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import get_ident
from typing import Any

from ..guards import GUARDS, Guard


@dataclass(frozen=True)
class VegasParameters:
    """What the limit is tuned by (see the module docstring)."""

    alpha_share: float = 0.1
    beta_share: float = 0.3
    window_samples: int = 10
    window_s: float = 0.1
    min_limit: int = 1

    def alpha(self, limit: int) -> float:
        return max(1.0, self.alpha_share * limit)

    def beta(self, limit: int) -> float:
        return max(2.0, self.beta_share * limit)


class VegasLimit:
    """The limit alone, driven by samples; thread-safe; `clock` is injectable for tests."""

    def __init__(
        self,
        initial: int,
        max_limit: int,
        parameters: VegasParameters | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.parameters = parameters or VegasParameters()
        self.clock = clock
        self._lock = threading.Lock()
        self.max_limit = max(self.parameters.min_limit, max_limit)
        self.restart(initial)

    def restart(self, initial: int) -> None:
        """Back to `initial` (bounded), with no baseline and an empty window."""
        with self._lock:
            self.limit = self._bounded(initial)
            self.rtt_noload: float | None = None
            self.last_queue: float | None = None
            self.updates = 0
            self._window: list[float] = []
            self._window_peak_in_flight = 0
            self._window_began = self.clock()

    def bound(self, max_limit: int) -> None:
        with self._lock:
            self.max_limit = max(self.parameters.min_limit, max_limit)
            self.limit = self._bounded(self.limit)

    def _bounded(self, limit: float) -> int:
        return int(max(self.parameters.min_limit, min(self.max_limit, limit)))

    def sample(self, rtt_s: float, in_flight: int) -> None:
        """One admitted checkout took `rtt_s`; `in_flight` were inside when it left (itself included)."""
        with self._lock:
            if self.rtt_noload is None or rtt_s < self.rtt_noload:
                self.rtt_noload = rtt_s
            self._window.append(rtt_s)
            self._window_peak_in_flight = max(self._window_peak_in_flight, in_flight)
            now = self.clock()
            window = self.parameters
            if len(self._window) < window.window_samples or now - self._window_began < window.window_s:
                return
            rtt, peak = statistics.median(self._window), self._window_peak_in_flight
            self._window, self._window_peak_in_flight, self._window_began = [], 0, now
            self._update(rtt, peak)

    def _update(self, rtt: float, peak_in_flight: int) -> None:  # under self._lock
        self.updates += 1
        noload = self.rtt_noload
        assert noload is not None, "sample() keeps it before any update"
        queue = self.limit * (1 - noload / rtt) if rtt > 0 else 0.0
        self.last_queue = queue
        if peak_in_flight * 2 < self.limit:
            return  # app-limited: the load, not the limit, kept them few
        if queue < self.parameters.alpha(self.limit):
            self.limit = self._bounded(self.limit + 1)
        elif queue > self.parameters.beta(self.limit):
            self.limit = self._bounded(self.limit - 1)

    def report(self) -> dict[str, Any]:
        with self._lock:
            noload = None if self.rtt_noload is None else round(self.rtt_noload * 1000, 3)
            queue = None if self.last_queue is None or math.isnan(self.last_queue) else round(self.last_queue, 2)
            return {"limit": self.limit, "rtt_noload_ms": noload, "queue": queue, "updates": self.updates}


class AdaptiveGuard(Guard):
    """Admits while fewer than `limit` are inside; each release feeds the limit its time inside.

    `permits` is where the limit starts (`capacity`). Like a semaphore of
    more than one permit it does not exclude: the shop reserves stock under a
    lock of its own, as under `semaphore`.
    """

    name = "adaptive"

    def __init__(self, label: str = "", permits: int = 1, clock: Callable[[], float] = time.monotonic):
        super().__init__(label, permits)
        self.permits = permits
        self.limiter = VegasLimit(permits, max_limit=max(permits, 1024), clock=clock)
        self._room = threading.Condition(threading.Lock())
        self._inside = 0
        self._since: dict[int, float] = {}  # ident -> when it was admitted

    @property
    def excludes(self) -> bool:
        return False

    @property
    def limit(self) -> int:
        return self.limiter.limit

    def _acquire(self, timeout: float) -> bool:
        with self._room:
            if not self._room.wait_for(lambda: self._inside < self.limiter.limit, timeout):
                return False
            self._inside += 1
        self._since[get_ident()] = self.limiter.clock()
        return True

    def _release(self) -> None:
        began = self._since.pop(get_ident(), None)
        with self._room:
            in_flight = self._inside
            self._inside -= 1
        if began is not None:
            self.limiter.sample(self.limiter.clock() - began, in_flight)
        with self._room:
            self._room.notify_all()  # a place is free, and the limit may have grown


GUARDS[AdaptiveGuard.name] = AdaptiveGuard  # one more entry in the registry (see `guards`)
