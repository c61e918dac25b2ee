"""The lab's door (`Gate`): a thread budget for every operation that can wait on a lock, and a reset's barrier.

Checkouts pass it before their own admission (`checkouts.Admission`), and
so do deposits, withdrawals, transfers and audits: however they mix, and
whatever locks are stuck, they never hold more than
`threads - RESERVED_THREADS` server threads, so `/healthz`, `/stats` and
`/admin/*` always find one. A reset closes the door, waits for those
inside, resets with nobody in, and opens it again.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from ...settings import RESERVED_THREADS


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

    def __init__(self, waited_s: float, blocking: list[dict[str, Any]], database: str | None = None):
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

    def __exit__(self, *exc_info: object) -> None:
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

    def enter(self, name: str) -> AbstractContextManager[object]:
        """Step in (leaving the returned block steps out again), or raise `ServerBusy` / `ResetInProgress`."""
        me = threading.current_thread()
        ident = threading.get_ident()
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
        self, unblock: Callable[[], object], describe: Callable[[list[Operation]], list[dict[str, Any]]]
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

    def report(self) -> dict[str, Any]:
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
