"""The wait-for graph of the account locks: its edges (`Wait`), the cycles in it, and their records.

A thread waits for at most one lock and a lock has at most one holder, so
from any waiter there is exactly one path to follow (`_cycle_through`).
`WaitForGraph` is the detector half of `LockTable`: it reads and writes the
table's bookkeeping (`_waits`, `_holder`, `recent`) only under the table's
`_graph` lock, which its callers hold.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..guards import DeadlockVictim, deadlock_record

#: How many deadlocks `/debug/locks` remembers.
RECENT_DEADLOCKS = 20

WAITING, GRANTED, CANCELLED = "waiting", "granted", "cancelled"


@dataclass(eq=False)
class Wait:
    """One thread waiting for one lock, since `since` (monotonic seconds).

    Both an edge of the wait-for graph and a place in the lock's queue. Its
    `state` starts `waiting` and changes once, under the table's lock: to
    `granted` when a release hands the lock over, or to `cancelled` when it
    leaves the queue without it (its time ran out, or it was chosen as a
    deadlock victim: `error` is what the waiting thread then raises). Any
    thread may cancel a wait, so a waiter can be woken from outside too; it
    sleeps on its own `woken` event and reads `state` when it wakes.
    """

    ident: int
    thread: str
    account: str
    since: float
    #: False for a brief try that gives up by itself (policy `backoff`): no deadlock can hang on it
    patient: bool = True
    #: the id of the deadlock this wait was reported in, if any
    reported: int | None = None
    state: str = WAITING
    error: BaseException | None = field(default=None, repr=False)
    woken: threading.Event = field(default_factory=threading.Event, repr=False)

    def sleep(self, timeout: float | None) -> bool:
        """Sleep until granted or cancelled (True), or `timeout` seconds (False)."""
        return self.woken.wait(timeout)


class WaitForGraph:
    """Finding, reporting and breaking the cycles of waiting among the account locks (see `LockTable`)."""

    _graph: threading.Lock
    _holder: dict[str, tuple[int, str]]
    _waits: dict[int, Wait]
    _ids: itertools.count[int]
    recent: deque[dict[str, Any]]
    detected: int

    def _cancel(self, wait: Wait, error: BaseException | None = None) -> None:
        raise NotImplementedError  # the queue's: `LockTable._cancel`

    def _cycle_through(self, start: int) -> list[Wait] | None:
        """The waits that lead from thread `start` back to itself, if any."""
        path: list[Wait] = []
        seen: set[int] = set()
        ident = start
        while ident not in seen:
            wait = self._waits.get(ident)
            if wait is None:
                return None  # someone on the path is running: it will release
            if not wait.patient:
                return None  # someone on the path is only trying: it will give up
            holder = self._holder.get(wait.account)
            if holder is None:
                return None  # free: cannot last while someone queues
            seen.add(ident)
            path.append(wait)
            ident = holder[0]
        return path if ident == start else None  # else: stuck behind a cycle, not in it

    def _cycles(self) -> list[list[Wait]]:
        """Every cycle in the graph now, each once (under `_graph`)."""
        cycles: list[list[Wait]] = []
        seen: set[int] = set()
        for ident in self._waits:
            cycle = self._cycle_through(ident)
            if cycle and not seen & {w.ident for w in cycle}:
                seen |= {w.ident for w in cycle}
                cycles.append(cycle)
        return cycles

    def _describe(self, cycle: list[Wait]) -> list[dict[str, Any]]:
        holds: dict[int, list[str]] = {}
        for account, (ident, _) in self._holder.items():
            holds.setdefault(ident, []).append(account)
        return [
            {"thread": w.thread, "ident": w.ident, "holds": sorted(holds.get(w.ident, [])), "waits_for": w.account}
            for w in cycle
        ]

    def _check(self, wait: Wait, may_give_up: bool) -> None:
        """After a slice of waiting (under `_graph`): is this thread in a cycle? If so, give up or report."""
        cycle = self._cycle_through(wait.ident)
        if cycle is None:
            return
        if may_give_up:
            self._give_up(wait, cycle, "detector")
        elif _on_record(cycle) is None:  # reported once, not at every check
            self._report(wait, cycle, detected_by=wait.thread, broken_by=None)

    def _report(self, wait: Wait, cycle: list[Wait], detected_by: str, broken_by: str | None) -> dict[str, Any]:
        deadlock = self._record(next(self._ids), wait, cycle, detected_by, broken_by)
        for member in cycle:
            member.reported = deadlock["id"]
        self.recent.append(deadlock)
        self.detected += 1
        return deadlock

    def _give_up(self, wait: Wait, cycle: list[Wait], by: str) -> dict[str, Any]:
        """Make `wait` the victim of its cycle: on record as broken, and cancelled with `DeadlockVictim`.

        Cancelling takes its edge out of the graph at once, so the next
        member of the cycle to check finds the cycle broken.
        """
        recorded = _on_record(cycle)
        if recorded is not None:
            deadlock = self._break_recorded(recorded, wait, cycle, by)
        else:
            deadlock = self._report(wait, cycle, detected_by=wait.thread if by == "detector" else by, broken_by=by)
        self._cancel(wait, DeadlockVictim(deadlock))
        return deadlock

    def _record(
        self, deadlock_id: int, wait: Wait, cycle: list[Wait], detected_by: str, broken_by: str | None
    ) -> dict[str, Any]:
        accounts = sorted({w.account for w in cycle})
        victim = wait.thread if broken_by else None
        return deadlock_record(deadlock_id, self._describe(cycle), accounts, wait.since, detected_by, victim, broken_by)

    def _break_recorded(self, deadlock_id: int, wait: Wait, cycle: list[Wait], by: str = "detector") -> dict[str, Any]:
        """A deadlock reported earlier (by a waiter that may not give up) is now broken, `wait` its victim.

        Its record may be gone (pushed out of `recent`, or reset): then it is
        written again, whole, from the cycle as it stands.
        """
        for deadlock in self.recent:
            if deadlock["id"] == deadlock_id:
                deadlock.update(victim=wait.thread, broken=True, broken_by=by)
                return deadlock
        deadlock = self._record(deadlock_id, wait, cycle, wait.thread, broken_by=by)
        self.recent.append(deadlock)
        return deadlock

    def record_broken(
        self, steps: list[dict[str, Any]], accounts: list[str], since: float, victim: str
    ) -> dict[str, Any]:
        """Put on record a deadlock the operator broke outside these locks (a self-deadlocked guard)."""
        with self._graph:
            deadlock = deadlock_record(next(self._ids), steps, accounts, since, "operator", victim, "operator")
            self.recent.append(deadlock)
            self.detected += 1
        return deadlock

    def break_deadlocks(self) -> list[dict[str, Any]]:
        """The operator's way out: in every live cycle, cancel the youngest wait (`DeadlockVictim`).

        With `lock_timeout_ms` none nobody gives up by itself, and a cycle
        lasts until restart. This breaks *no preemption* from outside, as a
        DBA's `pg_terminate_backend` does: the victim's thread wakes, rolls
        back, releases its locks, and its client is answered 409.
        """
        with self._graph:
            return [self._give_up(max(cycle, key=lambda w: w.since), cycle, "operator") for cycle in self._cycles()]


def _on_record(cycle: list[Wait]) -> int | None:
    """The id of the record of this very cycle, if every member of it was reported in the same one."""
    known = {w.reported for w in cycle}
    return known.pop() if len(known) == 1 and None not in known else None
