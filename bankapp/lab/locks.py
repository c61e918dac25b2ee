"""Per-account locks that know who holds them and who waits: a live wait-for graph.

A deadlock is a cycle of waiting: thread A holds `acc-00` and waits for
`acc-01`, which thread B holds while it waits for `acc-00`. Neither can
move, and a plain `threading.Lock` will never tell you so. Here every
account lock is wrapped once, in `AccountLock`, and reports to one
`LockTable`:

- which thread holds each lock (an edge lock -> thread),
- which lock each waiting thread waits for (an edge thread -> lock).

Together they are the wait-for graph. A thread waits for at most one lock
and a `Lock` has at most one holder, so from any waiter there is exactly one
path to follow: waiter -> lock it wants -> that lock's holder -> the lock
*that* thread wants -> ... The path either ends (someone is running and will
release) or comes back to a thread already seen: a cycle, a deadlock.

Checking on every acquire would be wasted work, since almost every wait ends
by itself. Like PostgreSQL after `deadlock_timeout`, a waiter waits in slices
of `deadlock_check_ms`; only when a slice runs out does it look for a cycle
through itself. If it finds one it becomes the *victim*: it stops waiting
(taking its edge out of the graph at once, so the other members of the cycle
do not also give up) and raises `DeadlockVictim`; the caller rolls back and
releases what it holds, and the others proceed. With `lock_timeout_ms`
`none` nobody may give up: the cycle is reported once (it shows in
`/debug/locks` and in the recent deadlocks) and the threads wait forever,
which is what a real deadlock looks like.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .guards import GuardTimeout, LockGuard

#: How many deadlocks `/debug/locks` remembers.
RECENT_DEADLOCKS = 20


@dataclass
class Wait:
    """One thread waiting for one lock, since `since` (monotonic seconds)."""

    ident: int
    thread: str
    account: str
    since: float
    #: False for a brief try that gives up by itself (policy `backoff`): no deadlock can hang on it
    patient: bool = True
    #: the id of the deadlock this wait was reported in, if any
    reported: int | None = field(default=None)


class DeadlockVictim(Exception):
    """This thread was found in a wait-for cycle and gave up its wait.

    `deadlock` is the record `/debug/locks` keeps: the cycle, each thread
    with the accounts it holds and the one it waits for.
    """

    def __init__(self, deadlock: dict):
        self.deadlock = deadlock
        steps = "; ".join(
            f"thread {step['thread']} holds {', '.join(step['holds']) or 'nothing'} and waits for {step['waits_for']}"
            for step in deadlock["cycle"]
        )
        super().__init__(
            f"deadlock: {steps}. This request was chosen as the victim after waiting "
            f"{deadlock['detected_after_ms']:g} ms; it rolled back and released its locks so the others can go on"
        )


class AccountLock(LockGuard):
    """A `threading.Lock` for one account that reports every wait and hold.

    `acquire(timeout, check_after)` waits in slices of `check_after` seconds
    and looks for a deadlock between slices; in all it waits at most
    `timeout` (None: forever) and then returns False, as `Lock.acquire` does.
    """

    def __init__(self, account: str, table: LockTable):
        super().__init__(account)
        self.table = table

    def describe(self) -> str:
        return f"account lock of {self.label}"

    def acquire(self, timeout: float | None = None, check_after: float | None = None) -> bool:
        if super().acquire(0):  # free: the common case touches the graph once
            self.table._acquired(self, None)
            return True
        if timeout is not None and timeout <= 0:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = self.table._start_waiting(self)
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if remaining is None or check_after is None:
                    slice_ = check_after if remaining is None else remaining
                else:
                    slice_ = min(check_after, remaining)
                if super().acquire(slice_):
                    self.table._acquired(self, wait)
                    wait = None
                    return True
                if check_after is not None and time.monotonic() - wait.since >= check_after:
                    self.table._check(wait, may_give_up=timeout is not None)
        finally:
            if wait is not None:
                self.table._stop_waiting(wait)

    def try_acquire(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds and never check for deadlock.

        The wait shows in the graph, marked as a try: a cycle through it is
        no deadlock, since the trying thread will give up and let go.
        """
        if super().acquire(0):
            self.table._acquired(self, None)
            return True
        wait = self.table._start_waiting(self, patient=False)
        try:
            if super().acquire(timeout):
                self.table._acquired(self, wait)
                wait = None
                return True
            return False
        finally:
            if wait is not None:
                self.table._stop_waiting(wait)

    def release(self) -> None:
        if self.held_by_current_thread():
            self.table._released(self)  # out of the graph before anyone can take it
        super().release()  # raises RuntimeError for a thread that does not hold it


class LockTable:
    """Every account's `AccountLock` and the wait-for graph between them.

    The graph lives under one small private lock (`_graph`), held only for
    bookkeeping, never while waiting, so reading it (`snapshot()`, behind
    `/debug/locks`) never blocks on an account lock.
    """

    def __init__(self, account_ids: list[str]):
        self._graph = threading.Lock()
        self._locks = {account: AccountLock(account, self) for account in account_ids}
        self._holder: dict[str, tuple[int, str]] = {}  # account -> (ident, thread name)
        self._waits: dict[int, Wait] = {}  # ident -> what it waits for
        self._ids = itertools.count(1)
        self.recent: deque[dict] = deque(maxlen=RECENT_DEADLOCKS)
        self.detected = 0

    def __getitem__(self, account: str) -> AccountLock:
        return self._locks[account]

    def all(self) -> list[AccountLock]:
        return list(self._locks.values())

    def acquire(self, account: str, timeout: float | None, check_after: float | None) -> AccountLock:
        """Take the account's lock or raise `GuardTimeout` / `DeadlockVictim`."""
        lock = self._locks[account]
        if not lock.acquire(timeout, check_after):
            raise GuardTimeout(lock, timeout, self_deadlock=False)
        return lock

    # bookkeeping, called by AccountLock

    def _start_waiting(self, lock: AccountLock, patient: bool = True) -> Wait:
        thread = threading.current_thread()
        wait = Wait(thread.ident, thread.name, lock.label, time.monotonic(), patient=patient)
        with self._graph:
            self._waits[wait.ident] = wait
        return wait

    def _stop_waiting(self, wait: Wait) -> None:
        with self._graph:
            if self._waits.get(wait.ident) is wait:
                del self._waits[wait.ident]

    def _acquired(self, lock: AccountLock, wait: Wait | None) -> None:
        thread = threading.current_thread()
        with self._graph:  # one step: no moment where it both waits and holds
            if wait is not None and self._waits.get(wait.ident) is wait:
                del self._waits[wait.ident]
            self._holder[lock.label] = (thread.ident, thread.name)

    def _released(self, lock: AccountLock) -> None:
        with self._graph:
            self._holder.pop(lock.label, None)

    def _cycle_through(self, start: int) -> list[Wait] | None:
        """The waits that lead from thread `start` back to itself, if any."""
        path, seen = [], set()
        ident = start
        while ident not in seen:
            wait = self._waits.get(ident)
            if wait is None:
                return None  # someone on the path is running: it will release
            if not wait.patient:
                return None  # someone on the path is only trying: it will give up
            holder = self._holder.get(wait.account)
            if holder is None:
                return None  # just released: the waiter will get it
            seen.add(ident)
            path.append(wait)
            ident = holder[0]
        return path if ident == start else None  # else: stuck behind a cycle, not in it

    def _describe(self, cycle: list[Wait]) -> list[dict]:
        holds: dict[int, list[str]] = {}
        for account, (ident, _) in self._holder.items():
            holds.setdefault(ident, []).append(account)
        return [
            {"thread": w.thread, "ident": w.ident, "holds": sorted(holds.get(w.ident, [])), "waits_for": w.account}
            for w in cycle
        ]

    def _check(self, wait: Wait, may_give_up: bool) -> None:
        """After a slice of waiting: is this thread in a cycle? If so, give up or report."""
        with self._graph:
            cycle = self._cycle_through(wait.ident)
            if cycle is None:
                return
            known = {w.reported for w in cycle}
            if len(known) == 1 and None not in known:  # this very deadlock is already on record
                if not may_give_up:
                    return
                deadlock = self._break_recorded(known.pop(), wait, cycle)
                del self._waits[wait.ident]
                raise DeadlockVictim(deadlock)
            deadlock = self._record(next(self._ids), wait, cycle, may_give_up)
            for member in cycle:
                member.reported = deadlock["id"]
            self.recent.append(deadlock)
            self.detected += 1
            if may_give_up:
                del self._waits[wait.ident]  # the cycle is broken now, for everyone checking after us
        if may_give_up:
            raise DeadlockVictim(deadlock)

    def _record(self, deadlock_id: int, wait: Wait, cycle: list[Wait], broken: bool) -> dict:
        """The record of one deadlock, as `/debug/locks` and the 409 show it."""
        return {
            "id": deadlock_id,
            "detected_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "detected_by": wait.thread,
            "detected_after_ms": round((time.monotonic() - wait.since) * 1000, 1),
            "victim": wait.thread if broken else None,
            "broken": broken,
            "accounts": sorted({w.account for w in cycle}),
            "cycle": self._describe(cycle),
        }

    def _break_recorded(self, deadlock_id: int, wait: Wait, cycle: list[Wait]) -> dict:
        """A deadlock reported earlier (by a waiter that may not give up) is now broken by `wait`.

        Its record may be gone (pushed out of `recent`, or reset): then it is
        written again, whole, from the cycle as it stands.
        """
        for deadlock in self.recent:
            if deadlock["id"] == deadlock_id:
                deadlock.update(victim=wait.thread, broken=True)
                return deadlock
        deadlock = self._record(deadlock_id, wait, cycle, broken=True)
        self.recent.append(deadlock)
        return deadlock

    # what /debug/locks shows

    def snapshot(self) -> dict:
        """Holders, waiters, the wait-for edges, live cycles and recent deadlocks."""
        now = time.monotonic()
        with self._graph:
            waiters: dict[str, list[dict]] = {}
            for w in self._waits.values():
                waiters.setdefault(w.account, []).append(
                    {"thread": w.thread, "ident": w.ident, "waiting_ms": round((now - w.since) * 1000, 1)}
                )
            locks = [
                {
                    "account": account,
                    "holder": _thread(self._holder.get(account)),
                    "waiters": waiters.get(account, []),
                }
                for account in self._locks
                if account in self._holder or account in waiters
            ]
            edges = []
            for w in self._waits.values():
                holder = self._holder.get(w.account)
                edges.append(
                    {
                        "waiter": {"thread": w.thread, "ident": w.ident},
                        "account": w.account,
                        "holder": _thread(holder),
                        "waiting_ms": round((now - w.since) * 1000, 1),
                        "trying": not w.patient,
                    }
                )
            live, seen = [], set()
            for ident in self._waits:
                cycle = self._cycle_through(ident)
                if cycle and not seen & {w.ident for w in cycle}:
                    seen |= {w.ident for w in cycle}
                    live.append({"accounts": sorted({w.account for w in cycle}), "cycle": self._describe(cycle)})
            return {
                "locks": locks,
                "wait_for": edges,
                "live_deadlocks": live,
                "deadlocks_detected": self.detected,
                "recent_deadlocks": list(self.recent),
            }

    def reset(self) -> None:
        """Forget past deadlocks; locks and their holders stay as they are."""
        with self._graph:
            self.recent.clear()
            self.detected = 0
            for wait in self._waits.values():  # a cycle still standing is reported afresh
                wait.reported = None


def _thread(holder: tuple[int, str] | None) -> dict | None:
    return None if holder is None else {"thread": holder[1], "ident": holder[0]}
