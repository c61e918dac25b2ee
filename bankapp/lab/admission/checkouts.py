"""Admission: how many checkouts run at once, and what happens to the rest.

A `threading.BoundedSemaphore(capacity)` is a counter of free places. Each
checkout takes one (`acquire`) and gives it back (`release`); while all are
taken, the next one waits or is turned away. That is how a site limits
parallel use of a resource it cannot stretch, such as a payment gateway or a
pool of database connections. A `Lock` is the same with one place: safe but
slow. No guard at all has no limit: everyone gets in and everyone is slow.

`Admission` runs that protocol for any guard and keeps its counters exact:

1. the door: a checkout that would leave fewer than `RESERVED_THREADS` server
   threads free is turned away at once (`server-busy`). The door is the
   lab's, not the shop's (`gate.Gate`): deposits, transfers and
   audits, which can wait on locks too, pass the same one, so however they
   and the checkouts mix, and whatever locks are stuck, they never hold more
   than `threads - RESERVED_THREADS` threads. The settings check keeps a
   semaphore or lock from filling it alone; under `unsafe`, which has no
   limit of its own, the door is what keeps `/healthz` answering;
2. try the guard without waiting; if it is free, the checkout is admitted;
3. otherwise, with no time to wait (`timeout` 0) it is rejected at once
   (`full`); if `max_waiting` checkouts already wait, it is rejected at once
   (`queue-full`), because a waiting checkout holds a server thread;
4. otherwise it waits up to `timeout` seconds (`acquire(timeout=...)`
   returns False when the time runs out): admitted, or rejected (`timeout`).

`in_flight` is raised just after the acquire and lowered just before the
release, so it never counts more than the guard lets in: lowered after the
release, a newcomer could take the freed permit and be counted while the
leaver still is, and `peak_in_flight` would show `capacity + 1` although the
semaphore never admitted it. Counters live under `Admission`'s own small
lock, never the guard under test, so they are exact under `unsafe` too.

Threading's primitives are not fair: a newcomer that finds a place free in
step 2 may get in ahead of a checkout that has been waiting.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..guards import Guard
from ..reservoir import Reservoir

#: Why a checkout was turned away, as `reason` says it.
REASONS = {
    "server-busy": "the requests that may wait on locks already hold every server thread but the reserve",
    "full": "no place was free and admission_timeout_ms is 0",
    "queue-full": "no place was free and max_waiting checkouts already wait",
    "timeout": "no place came free within the admission timeout",
}


class AdmissionRejected(Exception):
    """A checkout turned away: the counts are those seen when it was."""

    def __init__(
        self,
        reason: str,
        guard: str,
        capacity: int | None,
        in_flight: int,
        waiting: int,
        max_waiting: int,
        waited_ms: float,
        retry_after: int = 1,
    ):
        self.reason = reason
        self.guard = guard
        self.capacity = capacity
        self.in_flight = in_flight
        self.waiting = waiting
        self.max_waiting = max_waiting
        self.waited_ms = round(waited_ms, 3)
        self.retry_after = retry_after
        limit = "no limit" if capacity is None else f"capacity {capacity}"
        super().__init__(
            f"checkout not admitted ({reason}): {REASONS[reason]}; {limit}, {in_flight} in flight, "
            f"{waiting} waiting (at most {max_waiting})"
        )


class Admission:
    """Admits checkouts through a guard and counts who is where."""

    def __init__(self, wait_samples: int = 10_000):
        self._lock = threading.Lock()
        self.in_flight = 0
        self.waiting = 0
        self._waits = Reservoir(wait_samples)
        self.reset()

    def reset(self) -> None:
        """Zero the totals; the peaks restart from what is happening now.

        `in_flight` and `waiting` are not totals but what is true this
        instant: checkouts under way when the reset lands still leave later.
        """
        with self._lock:
            self.admitted = 0
            self.rejected = 0
            self.rejections: Counter[str] = Counter()
            self.peak_in_flight = self.in_flight
            self.peak_waiting = self.waiting
            self._waits.clear()

    def turned_away(self, reason: str, guard: Guard, capacity: int | None, max_waiting: int) -> AdmissionRejected:
        """Count a checkout refused before it got to the guard (at the lab's door) and say why."""
        in_flight, waiting = self._count_rejection(reason)
        return AdmissionRejected(reason, guard.name, capacity, in_flight, waiting, max_waiting, 0.0)

    @contextmanager
    def admit(self, guard: Guard, *, capacity: int | None, timeout: float | None, max_waiting: int) -> Iterator[float]:
        """`with admission.admit(...) as waited_ms:` runs the body admitted.

        Raises `AdmissionRejected` instead of running it. The guard acquired
        is the one released, and the gauges are back where they were after.
        """
        arrived = time.perf_counter()

        def reject(reason: str) -> AdmissionRejected:
            in_flight, waiting = self._count_rejection(reason)
            waited = (time.perf_counter() - arrived) * 1000
            return AdmissionRejected(reason, guard.name, capacity, in_flight, waiting, max_waiting, waited)

        # Whatever fails between the acquire and the release (a counter the store cannot write, a
        # connection lost mid-statement), the permit goes back: a leaked permit turns checkouts away forever.
        acquired = entered = False
        try:
            if guard.acquire(0):
                acquired = True
                waited_ms = 0.0
                self._enter(waited_ms)
            else:
                waited_ms = self._wait(guard, arrived, timeout, max_waiting, reject)
                acquired = True
            entered = True
            yield waited_ms
        finally:
            try:
                if entered:
                    self._leave()
            finally:
                if acquired:
                    guard.release()

    def _wait(
        self,
        guard: Guard,
        arrived: float,
        timeout: float | None,
        max_waiting: int,
        reject: Callable[[str], AdmissionRejected],
    ) -> float:
        """Wait for the guard in a queue of at most `max_waiting`; admitted or raise (the guard given back)."""
        if timeout == 0:
            raise reject("full")
        if not self._join_queue(max_waiting):
            raise reject("queue-full")
        acquired = False
        try:
            acquired = guard.acquire(timeout)
        finally:
            if not acquired:
                self._leave_queue(None)
        if not acquired:
            raise reject("timeout")
        waited_ms = (time.perf_counter() - arrived) * 1000
        try:
            self._leave_queue(waited_ms)  # from waiting to in flight in one step
        except BaseException:
            guard.release()
            raise
        return waited_ms

    # The counting, in one place: a store that keeps these counters elsewhere
    # (the postgres store, for a whole fleet) overrides these five and `report`.

    def _enter(self, waited_ms: float) -> None:
        """Just after the acquire: one more in flight."""
        with self._lock:
            self._enter_flight(waited_ms)

    def _leave(self) -> None:
        """Just before the release: one fewer in flight."""
        with self._lock:
            self.in_flight -= 1

    def _join_queue(self, max_waiting: int) -> bool:
        """Take a place in the queue; False if `max_waiting` already wait."""
        with self._lock:
            if self.waiting >= max_waiting:
                return False
            self.waiting += 1
            self.peak_waiting = max(self.peak_waiting, self.waiting)
            return True

    def _leave_queue(self, admitted_after_ms: float | None) -> None:
        """Leave the queue: admitted (after `admitted_after_ms`) straight into flight, or not (None)."""
        with self._lock:
            self.waiting -= 1
            if admitted_after_ms is not None:
                self._enter_flight(admitted_after_ms)

    def _count_rejection(self, reason: str) -> tuple[int, int]:
        """Count one rejection; (in flight, waiting) as it saw them."""
        with self._lock:
            self.rejected += 1
            self.rejections[reason] += 1
            return self.in_flight, self.waiting

    def _enter_flight(self, waited_ms: float) -> None:  # under self._lock
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.admitted += 1
        self._waits.add(waited_ms)

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "waiting": self.waiting,
                "peak_waiting": self.peak_waiting,
                "admitted": self.admitted,
                "rejected": self.rejected,
                "rejections": dict(self.rejections),
                "wait_ms": self._waits.summary(),
            }
