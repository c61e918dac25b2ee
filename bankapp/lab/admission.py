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
   lab's, not the shop's (`bankapp.lab.lab.Gate`): deposits, transfers and
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
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

from ..settings import RESERVED_THREADS
from .guards import Guard
from .reservoir import Reservoir

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


class ServerBusy(Exception):
    """Turned away at the lab's door: `limit` requests already hold threads that may wait on locks.

    Nothing was done, so nothing needs undoing; the client may retry soon.
    """

    def __init__(self, operation: str, limit: int, inside: int, at_door: int, reserved: int):
        self.operation = operation
        self.limit = limit
        self.inside = inside
        self.at_door = at_door
        super().__init__(
            f"{operation} refused at once: at most {limit} requests may be in operations that can wait on locks "
            f"(deposits, withdrawals, transfers, audits, checkouts), and {inside + at_door} are; the other "
            f"{reserved} server threads are kept for /healthz, /stats, /debug/locks and /admin/*"
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

    def _wait(self, guard: Guard, arrived: float, timeout: float | None, max_waiting: int, reject) -> float:
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

    def report(self) -> dict:
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


#: How long a reset waits for the operations in flight to finish (breaking
#: deadlocks meanwhile), and so how long a request that comes during a reset waits for it.
RESET_WAIT_S = 10.0
#: How often a waiting reset looks for deadlocks to break.
RESET_BREAK_EVERY_S = 0.05


class ResetInProgress(Exception):
    """Refused because a reset runs: it did not finish within `waited_s`, or (`operation` reset) it is not done yet."""

    def __init__(self, operation: str, waited_s: float):
        self.operation = operation
        self.waited_s = round(waited_s, 3)
        if operation == "reset":
            message = f"another reset was still running after {self.waited_s:g} s; this one changed nothing"
        else:
            message = f"{operation} refused: a reset of the lab ran and had not finished after {self.waited_s:g} s"
        super().__init__(message)


class ResetBlocked(Exception):
    """A reset that gave up after `waited_s`: `blocking` are the operations still in flight. Nothing was reset."""

    def __init__(self, waited_s: float, blocking: list[dict], database: str | None = None):
        self.waited_s = waited_s
        self.blocking = blocking
        if database is not None:  # the store's own exclusion (the postgres store's row locks) held it off
            super().__init__(
                f"reset gave up after {waited_s:g} s and changed nothing: the database's locks: {database}"
            )
            return
        named = "; ".join(
            f"{op['operation']} on thread {op['thread']} for {op['running_ms']:g} ms"
            f" holding {', '.join(op['holds']) or 'nothing'}"
            + (f" and waiting for {', '.join(op['waits_for'])}" if op["waits_for"] else "")
            for op in blocking
        )
        super().__init__(
            f"reset gave up after {waited_s:g} s and changed nothing: {len(blocking)} operation(s) in flight "
            f"did not finish and no deadlock held them: {named}"
        )


@dataclass(slots=True)
class Operation:
    """One request inside a domain operation: what it is, on which thread, since when (monotonic).

    It is also what `Gate.enter` hands back: leaving its `with` block steps
    out of the gate (a plain `__exit__`, no object more on the hot path).
    """

    name: str
    thread: str
    ident: int
    since: float
    gate: Gate = field(repr=False, compare=False)

    def __enter__(self) -> Operation:
        return self

    def __exit__(self, *exc_info) -> None:
        gate = self.gate
        with gate._lock:
            del gate._inside[self.ident]
            if gate._resetting and not gate._inside:
                gate._changed.notify_all()


#: What `Gate.enter` hands a thread already inside: passing again takes no place and leaves none.
ALREADY_INSIDE = nullcontext()


class Gate:
    """The door of every domain operation that can wait on a lock: a thread budget, and a reset's barrier.

    Two jobs, one small lock:

    - the budget: at most `limit` requests may be inside (or queued at the
      door) at once. A thread waiting on a lock holds a server thread, and a
      stuck lock holds it forever, so without a bound a deadlock plus a few
      audits queued behind it take every thread and `/healthz` with them.
      The next one is refused at once (`ServerBusy`) and changes nothing.
    - the reset: a readers-writer gate. Operations enter as readers, any
      number together; a reset is the writer. It closes the door (newcomers
      wait at it, at most `reset_wait` seconds), waits until everyone inside
      has left, resets, and opens again. So a reset never lands in the
      middle of a transfer (whose rollback or counters would then undo or
      count against the fresh books) and the books are whole afterwards.

    A thread already inside passes again freely: it must never wait for a
    reset that waits for it. This gate is in-process. With a store shared by
    several processes (PostgreSQL), each process drains only its own
    requests: a fleet-wide reset needs the store's own exclusion (say, one
    transaction that takes every row's lock, or an advisory lock that every
    operation takes shared and the reset takes exclusively), left to it.
    """

    def __init__(self, limit: int, reset_wait: float = RESET_WAIT_S):
        self.limit = limit
        self.reset_wait = reset_wait
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._inside: dict[int, Operation] = {}  # ident -> its operation
        self._at_door = 0  # waiting for a reset to finish
        self._resetting = False
        self.peak_inside = 0
        self.refused: Counter[str] = Counter()

    def enter(self, name: str) -> AbstractContextManager:
        """Step in (leaving the returned block steps out again), or raise `ServerBusy` / `ResetInProgress`."""
        me = threading.current_thread()
        ident = me.ident
        with self._lock:
            inside = self._inside
            if ident in inside:
                return ALREADY_INSIDE
            if len(inside) + self._at_door >= self.limit:
                self.refused["server-busy"] += 1
                raise ServerBusy(name, self.limit, len(self._inside), self._at_door, RESERVED_THREADS)
            if self._resetting:
                arrived = time.monotonic()
                self._at_door += 1
                try:
                    opened = self._changed.wait_for(lambda: not self._resetting, self.reset_wait)
                finally:
                    self._at_door -= 1
                if not opened:
                    self.refused["reset-in-progress"] += 1
                    raise ResetInProgress(name, time.monotonic() - arrived)
            operation = inside[ident] = Operation(name, me.name, ident, time.monotonic(), self)
            if len(inside) > self.peak_inside:
                self.peak_inside = len(inside)
        return operation

    @contextmanager
    def closed(
        self, unblock: Callable[[], object], describe: Callable[[list[Operation]], list[dict]]
    ) -> Iterator[None]:
        """Run the body with nobody inside and the door shut; `unblock()` is called while waiting.

        Raises `ResetInProgress` if another reset holds the door for longer than `reset_wait`, and
        `ResetBlocked` (what `describe` says of those still inside) when
        they have not all left within `reset_wait`.
        """
        arrived = time.monotonic()
        with self._lock:
            # a second reset waits its turn (a storm of resets is one after another, each whole), at most
            # `reset_wait`: a reset that cannot start by then changes nothing and says so
            if not self._changed.wait_for(lambda: not self._resetting, self.reset_wait):
                raise ResetInProgress("reset", time.monotonic() - arrived)
            self._resetting = True
        try:
            deadline = time.monotonic() + self.reset_wait
            while True:
                unblock()
                with self._lock:
                    left = deadline - time.monotonic()
                    if self._changed.wait_for(lambda: not self._inside, max(0.0, min(RESET_BREAK_EVERY_S, left))):
                        break
                    blocking = list(self._inside.values()) if left <= 0 else None
                if blocking is not None:
                    raise ResetBlocked(self.reset_wait, describe(blocking))
            yield
        finally:
            with self._lock:
                self._resetting = False
                self._changed.notify_all()

    def report(self) -> dict:
        with self._lock:
            return {
                "limit": self.limit,
                "in_flight": len(self._inside),
                "peak_in_flight": self.peak_inside,
                "waiting_for_reset": self._at_door,
                "refused": dict(self.refused),
            }

    def reset(self) -> None:
        with self._lock:
            self.refused.clear()
            self.peak_inside = len(self._inside)
