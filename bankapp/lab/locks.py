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
through itself. If it finds one it becomes the *victim*: it leaves the queue
(taking its edge out of the graph at once, so the other members of the cycle
do not also give up) and raises `DeadlockVictim`; the caller rolls back and
releases what it holds, and the others proceed. With `lock_timeout_ms`
`none` nobody may give up: the cycle is reported once (it shows in
`/debug/locks` and in the recent deadlocks) and the threads wait forever,
which is what a real deadlock looks like, until the operator breaks it
from outside (`break_deadlocks`: no preemption, broken).

Fairness. `threading.Lock` promises no order: a thread that releases and
at once acquires again usually wins over one that has waited a second, and
under load a patient waiter can lose that race until its timeout runs out:
starvation. These locks keep a queue, as PostgreSQL's lock manager does: a
waiter joins the end of its lock's queue (a `Wait`), `release()` hands the
lock to the first in the queue, and a newcomer never takes a lock someone
is queued for. A waiter that times out or gives up leaves the queue; one
handed the lock in the very instant its time runs out keeps it. Ownership
changes at the hand-over, under the table's lock, so the graph never shows
a lock free while its next holder is still waking up.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .guards import DeadlockVictim, Guard, GuardTimeout, deadlock_record

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


class LockTable:
    """Every account's `AccountLock`, their queues, and the wait-for graph between them.

    All of it lives under one small private lock (`_graph`), held only for
    bookkeeping, never while waiting, so reading it (`snapshot()`, behind
    `/debug/locks`) never blocks on an account lock. A lock with a queue
    always has a holder: a release hands it on rather than letting it go.
    """

    def __init__(self, account_ids: list[str]):
        self._graph = threading.Lock()
        self._locks = {account: AccountLock(account, self) for account in account_ids}
        self._holder: dict[str, tuple[int, str]] = {}  # account -> (ident, thread name)
        self._queues: dict[str, deque[Wait]] = {account: deque() for account in account_ids}
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
                self._holder[lock.label] = (me.ident, me.name)
                return True
            if timeout is not None and timeout <= 0:
                return False
            wait = Wait(me.ident, me.name, lock.label, time.monotonic(), patient=patient)
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

    # the detector

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
                return None  # free: cannot last while someone queues
            seen.add(ident)
            path.append(wait)
            ident = holder[0]
        return path if ident == start else None  # else: stuck behind a cycle, not in it

    def _cycles(self) -> list[list[Wait]]:
        """Every cycle in the graph now, each once (under `_graph`)."""
        cycles, seen = [], set()
        for ident in self._waits:
            cycle = self._cycle_through(ident)
            if cycle and not seen & {w.ident for w in cycle}:
                seen |= {w.ident for w in cycle}
                cycles.append(cycle)
        return cycles

    def _describe(self, cycle: list[Wait]) -> list[dict]:
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

    def _report(self, wait: Wait, cycle: list[Wait], detected_by: str, broken_by: str | None) -> dict:
        deadlock = self._record(next(self._ids), wait, cycle, detected_by, broken_by)
        for member in cycle:
            member.reported = deadlock["id"]
        self.recent.append(deadlock)
        self.detected += 1
        return deadlock

    def _give_up(self, wait: Wait, cycle: list[Wait], by: str) -> dict:
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

    def _record(self, deadlock_id: int, wait: Wait, cycle: list[Wait], detected_by: str, broken_by: str | None) -> dict:
        accounts = sorted({w.account for w in cycle})
        victim = wait.thread if broken_by else None
        return deadlock_record(deadlock_id, self._describe(cycle), accounts, wait.since, detected_by, victim, broken_by)

    def _break_recorded(self, deadlock_id: int, wait: Wait, cycle: list[Wait], by: str = "detector") -> dict:
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

    def record_broken(self, steps: list[dict], accounts: list[str], since: float, victim: str) -> dict:
        """Put on record a deadlock the operator broke outside these locks (a self-deadlocked guard)."""
        with self._graph:
            deadlock = deadlock_record(next(self._ids), steps, accounts, since, "operator", victim, "operator")
            self.recent.append(deadlock)
            self.detected += 1
        return deadlock

    def break_deadlocks(self) -> list[dict]:
        """The operator's way out: in every live cycle, cancel the youngest wait (`DeadlockVictim`).

        With `lock_timeout_ms` none nobody gives up by itself, and a cycle
        lasts until restart. This breaks *no preemption* from outside, as a
        DBA's `pg_terminate_backend` does: the victim's thread wakes, rolls
        back, releases its locks, and its client is answered 409.
        """
        with self._graph:
            return [self._give_up(max(cycle, key=lambda w: w.since), cycle, "operator") for cycle in self._cycles()]

    # what /debug/locks shows

    def snapshot(self) -> dict:
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


def _on_record(cycle: list[Wait]) -> int | None:
    """The id of the record of this very cycle, if every member of it was reported in the same one."""
    known = {w.reported for w in cycle}
    return known.pop() if len(known) == 1 and None not in known else None


def _thread(holder: tuple[int, str] | None) -> dict | None:
    return None if holder is None else {"thread": holder[1], "ident": holder[0]}


def _slice(deadline: float | None, check_after: float | None) -> float | None:
    """How long to sleep before the next look: until the next deadlock check or the deadline, whichever is first."""
    if deadline is None:
        return check_after
    remaining = max(0.0, deadline - time.monotonic())
    return remaining if check_after is None else min(check_after, remaining)
