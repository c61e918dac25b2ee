"""The account locks (`AccountLock`) and their table (`LockTable`): who holds each, and who queues for it.

The wait-for graph they make, and the deadlocks found in it, are
`graph`'s; why the table keeps queues at all is told in the package's
docstring (`bankapp.lab.locks`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..guards import Guard, GuardTimeout
from .graph import CANCELLED, GRANTED, RECENT_DEADLOCKS, WAITING, Wait, WaitForGraph


class AccountLock(Guard):
    """A lock for one account that reports every wait and hold, and serves its waiters in order.

    `acquire(timeout, check_after)` waits in slices of `check_after` seconds
    and looks for a deadlock between slices; in all it waits at most
    `timeout` (None: forever) and then returns False, as `Lock.acquire` does.
    Like a `Lock`, it is not reentrant: its holder asking again waits for
    itself, a cycle of one. Who holds it is kept in the `LockTable`, the one
    record the graph is read from.
    """

    name = "lock"

    def __init__(self, account: str, table: LockTable):
        super().__init__(account)
        self.table = table

    def describe(self) -> str:
        return f"account lock of {self.label}"

    def acquire(self, timeout: float | None = None, check_after: float | None = None) -> bool:
        return self.table._acquire(self, timeout, check_after, patient=True)

    def try_acquire(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds and never check for deadlock.

        The wait shows in the graph, marked as a try: a cycle through it is
        no deadlock, since the trying thread will give up and let go. It
        queues like any waiter: a try does not jump the queue either.
        """
        return self.table._acquire(self, timeout, None, patient=False)

    def release(self) -> None:
        """Hand the lock to the first waiter, or leave it free; only its holder may."""
        self.table._release(self)

    def holders(self) -> dict[int, int]:
        holder = self.table.holder(self.label)
        return {} if holder is None else {holder[0]: 1}

    def held_by_current_thread(self) -> bool:
        holder = self.table.holder(self.label)
        return holder is not None and holder[0] == threading.get_ident()


class LockTable(WaitForGraph):
    """Every account's `AccountLock`, their queues, and the wait-for graph between them.

    All of it lives under one small private lock (`_graph`), held only for
    bookkeeping, never while waiting, so reading it (`snapshot()`, behind
    `/debug/locks`) never blocks on an account lock. A lock with a queue
    always has a holder: a release hands it on rather than letting it go.
    """

    def __init__(self, account_ids: Sequence[str]):
        self._graph = threading.Lock()
        self._locks = {account: AccountLock(account, self) for account in account_ids}
        self._holder: dict[str, tuple[int, str]] = {}  # account -> (ident, thread name)
        self._queues: dict[str, deque[Wait]] = {account: deque() for account in account_ids}
        self._waits: dict[int, Wait] = {}  # ident -> what it waits for
        self._ids = itertools.count(1)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DEADLOCKS)
        self.detected = 0

    def __getitem__(self, account: str) -> AccountLock:
        return self._locks[account]

    def all(self) -> list[AccountLock]:
        return list(self._locks.values())

    def acquire(self, account: str, timeout: float | None, check_after: float | None) -> AccountLock:
        """Take the account's lock or raise `GuardTimeout` / `DeadlockVictim`."""
        lock = self._locks[account]
        if not self._acquire(lock, timeout, check_after, True):
            raise GuardTimeout(lock, timeout, self_deadlock=False)
        return lock

    def holder(self, account: str) -> tuple[int, str] | None:
        """(ident, thread name) of the thread holding the account's lock, if any."""
        with self._graph:
            return self._holder.get(account)

    # the queue, used by AccountLock

    def _acquire(self, lock: AccountLock, timeout: float | None, check_after: float | None, patient: bool) -> bool:
        """Take `lock` at once if it is free; else queue and wait in slices until granted or out of time."""
        me = threading.current_thread()
        with self._graph:
            if lock.label not in self._holder:  # free, so nobody queues: taken at once, no edge in the graph
                self._holder[lock.label] = (threading.get_ident(), me.name)
                return True
            if timeout is not None and timeout <= 0:
                return False
            wait = Wait(threading.get_ident(), me.name, lock.label, time.monotonic(), patient=patient)
            self._queues[lock.label].append(wait)
            self._waits[wait.ident] = wait
        deadline = None if timeout is None else wait.since + timeout
        try:
            while not wait.sleep(_slice(deadline, check_after)):
                with self._graph:
                    if wait.state != WAITING:
                        break  # handed the lock (or cancelled) just as the slice ran out
                    if deadline is not None and time.monotonic() >= deadline:
                        self._cancel(wait)
                        break
                    if check_after is not None:
                        self._check(wait, may_give_up=timeout is not None)
                        if wait.state != WAITING:
                            break
        except BaseException:  # interrupted while queued: leave, and pass on a lock handed over meanwhile
            with self._graph:
                if wait.state == GRANTED:
                    self._hand_over(lock.label)
                self._cancel(wait)
            raise
        if wait.state == GRANTED:
            return True
        if wait.error is not None:
            raise wait.error
        return False

    def _release(self, lock: AccountLock) -> None:
        with self._graph:
            holder = self._holder.get(lock.label)
            if holder is None or holder[0] != threading.get_ident():
                raise RuntimeError(f"{lock.describe()}: released by a thread that does not hold it")
            if self._queues[lock.label]:
                self._hand_over(lock.label)
            else:  # nobody waits: the lock is free
                del self._holder[lock.label]

    def _hand_over(self, account: str) -> None:
        """The lock's next holder is the first in its queue, recorded now, before it even wakes."""
        queue = self._queues[account]
        if not queue:
            del self._holder[account]
            return
        wait = queue.popleft()
        self._holder[account] = (wait.ident, wait.thread)
        del self._waits[wait.ident]  # one step: no moment where it both waits and holds
        wait.state = GRANTED
        wait.woken.set()

    def _cancel(self, wait: Wait, error: BaseException | None = None) -> None:
        """Take a wait that is still waiting out of its queue and the graph, and wake its thread.

        The thread then returns False (no `error`: its time ran out) or
        raises `error`. A wait already granted or cancelled is left alone.
        """
        if wait.state != WAITING:
            return
        self._queues[wait.account].remove(wait)
        del self._waits[wait.ident]
        wait.state, wait.error = CANCELLED, error
        wait.woken.set()

    # what /debug/locks shows

    def snapshot(self) -> dict[str, Any]:
        """Holders, waiters, the wait-for edges, live cycles and recent deadlocks."""
        now = time.monotonic()
        with self._graph:
            locks = [
                {
                    "account": account,
                    "holder": _thread(self._holder.get(account)),
                    "waiters": [  # in queue order: the first is the next holder
                        {"thread": w.thread, "ident": w.ident, "waiting_ms": round((now - w.since) * 1000, 1)}
                        for w in self._queues[account]
                    ],
                }
                for account in self._locks
                if account in self._holder
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
            live = [
                {"accounts": sorted({w.account for w in cycle}), "cycle": self._describe(cycle)}
                for cycle in self._cycles()
            ]
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


def _thread(holder: tuple[int, str] | None) -> dict[str, Any] | None:
    return None if holder is None else {"thread": holder[1], "ident": holder[0]}


def _slice(deadline: float | None, check_after: float | None) -> float | None:
    """How long to sleep before the next look: until the next deadlock check or the deadline, whichever is first."""
    if deadline is None:
        return check_after
    remaining = max(0.0, deadline - time.monotonic())
    return remaining if check_after is None else min(check_after, remaining)
