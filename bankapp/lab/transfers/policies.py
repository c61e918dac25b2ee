"""How a transfer takes its two locks: five policies, and the four conditions of deadlock.

A transfer needs two accounts at once, and that is where deadlock lives. A
deadlock needs all four Coffman conditions together:

1. mutual exclusion: a lock has one holder at a time;
2. hold and wait: a thread keeps what it holds while it waits for more;
3. no preemption: nobody can take a lock away from its holder;
4. circular wait: a cycle of threads, each waiting for the next one's lock.

Break any one and no deadlock can form. Each policy below is a small class
whose docstring says which condition it keeps or breaks; they are found by
name in `POLICIES`, and `transfer_policy` picks one per request.

Every transfer records what it changed (`Move.changes`), so when it has to
give up (a deadlock victim, a lock timeout) it puts every balance back
before it releases anything: nothing of a refused transfer is visible.
"""

from __future__ import annotations

import random
import time
from typing import ClassVar, Protocol

from ...settings import Config
from ..bank import InsufficientFunds, race_window
from ..guards import GuardTimeout
from ..ledger import LedgerStats
from ..locks import AccountLock, LockTable
from ..store import Store


class Counting(Protocol):
    def add(self, name: str, n: int = 1) -> None: ...


class Desk(Protocol):
    """What a move needs of the desk it runs on (`desk.TransferDesk`): its locks, store, ledger and counters."""

    # read-only, so that a desk may hold a richer part (its `TransferCounters` are `Counting`)
    @property
    def locks(self) -> LockTable: ...
    @property
    def store(self) -> Store: ...
    @property
    def ledger(self) -> LedgerStats: ...
    @property
    def counters(self) -> Counting: ...


#: How long `backoff` tries for the second lock before it gives everything up.
BACKOFF_TRY_MS = 2
#: The cap of `backoff`'s random wait between attempts.
BACKOFF_MAX_MS = 50


class Move:
    """One transfer in progress: the locks it holds and the changes it made."""

    def __init__(self, desk: Desk, config: Config, source: str, target: str, amount: int):
        self.desk = desk
        self.config = config
        self.source = source
        self.target = target
        self.amount = amount
        self.held: list[AccountLock] = []
        self.changes: list[tuple[str, int]] = []  # (account, delta), in order
        self.retries = 0

    # locks

    def lock(self, account: str) -> None:
        """Wait for the account's lock: deadlock checks every `deadlock_check_ms`, bounded by `lock_timeout_ms`."""
        lock = self.desk.locks.acquire(account, self.config.lock_timeout(), self.config.deadlock_check_ms / 1000)
        self.held.append(lock)

    def try_lock(self, account: str, timeout_ms: float) -> bool:
        """Try briefly, without deadlock checks: a failed try is the caller's signal to back off."""
        lock = self.desk.locks[account]
        if lock.try_acquire(timeout_ms / 1000):
            self.held.append(lock)
            return True
        return False

    def unlock(self, account: str) -> None:
        lock = self.desk.locks[account]
        self.held.remove(lock)
        lock.release()

    def unlock_all(self) -> None:
        while self.held:
            self.held.pop().release()

    def holds(self, account: str) -> bool:
        return self.desk.locks[account] in self.held

    # balances

    def window(self) -> None:
        race_window(self.config)

    def debit(self) -> None:
        """Take the amount from `source`; refuse if it does not cover it."""
        balance = self.desk.store.read(self.source)
        if balance < self.amount:
            raise InsufficientFunds(self.source, balance, self.amount)
        self.change(self.source, -self.amount)

    def credit(self) -> None:
        self.change(self.target, self.amount)

    def change(self, account: str, delta: int) -> None:
        self.desk.store.write(account, self.desk.store.read(account) + delta)
        self.changes.append((account, delta))
        self.desk.ledger.in_flight(account, delta)  # known to the ledger, so never counted as lost

    def undo(self, relock: bool) -> None:
        """Put back every change, newest first, each under its account's lock.

        Where the policy has already let a lock go (`release-first`), it is
        taken again, waiting as long as it takes: a thread that holds nothing
        cannot be part of a deadlock, so the wait ends.
        """
        while self.changes:
            account, delta = self.changes.pop()
            relocked = relock and not self.holds(account)
            if relocked:
                self.held.append(self.desk.locks.acquire(account, None, self.config.deadlock_check_ms / 1000))
            self.desk.store.write(account, self.desk.store.read(account) - delta)
            self.desk.ledger.in_flight(account, -delta)
            if relocked:
                self.unlock(account)


class Policy:
    """How a transfer takes its locks. `move()` changes balances or raises."""

    name: ClassVar[str]
    #: False for `unsafe`, which never takes a lock (not even to roll back).
    locks: ClassVar[bool] = True

    def move(self, m: Move) -> None:
        raise NotImplementedError


class UnsafePolicy(Policy):
    """No locks: on each account read the balance, wait, write it.

    No lock, so no deadlock, and no correctness either: two transfers that
    touch one account both read its old balance, and the second write
    erases the first. A lost debit creates money, a lost credit destroys
    it, and `/audit` says so.
    """

    name = "unsafe"
    locks = False

    def move(self, m: Move) -> None:
        store = m.desk.store
        source = store.read(m.source)
        if source < m.amount:
            raise InsufficientFunds(m.source, source, m.amount)
        m.window()
        store.write(m.source, source - m.amount)
        target = store.read(m.target)
        m.window()
        store.write(m.target, target + m.amount)


class NaivePolicy(Policy):
    """Lock `from`, debit, wait, lock `to`, credit: keeps all four conditions.

    Mutual exclusion (a `Lock`), hold and wait (it holds `from` while it
    waits for `to`), no preemption (nobody takes `from` away), and, when
    another transfer goes the other way, circular wait: A holds `acc-00` and
    waits for `acc-01`, B holds `acc-01` and waits for `acc-00`. Only the
    detector ends it, by making one of them the victim.
    """

    name = "naive"

    def move(self, m: Move) -> None:
        m.lock(m.source)
        m.debit()
        m.window()
        m.lock(m.target)
        m.credit()


class OrderedPolicy(Policy):
    """Lock both accounts in account-id order, then move: breaks circular wait.

    Every thread climbs the same ladder, lower id first. A cycle would need
    someone holding a higher lock to wait for a lower one, and nobody does,
    so no cycle can form. The audit takes its locks in the same order.
    """

    name = "ordered"

    def move(self, m: Move) -> None:
        for account in sorted((m.source, m.target)):
            m.lock(account)
        m.debit()
        m.window()
        m.credit()


class ReleaseFirstPolicy(Policy):
    """Lock `from`, debit, release; then lock `to`, credit, release: breaks hold and wait.

    A thread never holds one lock while it waits for another, so it can
    never be part of a cycle. The price: between the two steps the money is
    in neither account. Each step is exact, yet an audit that reads in that
    gap sees a total short by the amount in flight: the two steps are not
    one atomic transfer any more.
    """

    name = "release-first"

    def move(self, m: Move) -> None:
        m.lock(m.source)
        m.debit()
        m.unlock(m.source)
        m.window()  # the money is in flight here, under no lock
        m.lock(m.target)
        m.credit()


class BackoffPolicy(Policy):
    """Try one lock, then the other briefly; on failure give back everything, wait at random, retry.

    Breaks no preemption, from the inside: a thread that cannot get its
    second lock preempts itself, undoing its debit and releasing what it
    holds, so whoever waited for it can go on. The random wait (growing with
    each attempt, "full jitter") keeps two opposing transfers from retrying
    in lockstep forever (a livelock). Both locks are only tried, never
    waited for at length: a queue of threads blocked on `from` would refill
    it the moment a thread backs off, and the collision would start again.

    A retry starts with the lock that refused it, as C++'s `std::lock` does.
    Retrying in the same order can starve: the audit takes `acc-00` and then
    waits, patiently, for `acc-01`; a transfer from `acc-01` to `acc-00`
    holding `acc-01` is the one that gives up, every time, and by its next
    try the audit has queued for `acc-00` again. Starting with `acc-00`, the
    transfer queues there too, is served in turn, and then finds `acc-01`
    free. Retries are counted in `/stats`.
    """

    name = "backoff"

    def move(self, m: Move) -> None:
        timeout = m.config.lock_timeout()
        deadline = None if timeout is None else time.monotonic() + timeout
        first, second = m.source, m.target
        while True:
            if m.try_lock(first, BACKOFF_TRY_MS):
                if first == m.source:
                    m.debit()
                    m.window()
                if m.try_lock(second, BACKOFF_TRY_MS):
                    if second == m.source:
                        m.debit()
                        m.window()
                    m.credit()
                    return
                m.undo(relock=True)
                m.unlock_all()
                first, second = second, first  # `first` is now the lock that refused
            if deadline is not None and time.monotonic() >= deadline:
                raise GuardTimeout(m.desk.locks[first], timeout, self_deadlock=False)
            m.retries += 1
            m.desk.counters.add("retries")
            time.sleep(random.uniform(0, min(BACKOFF_MAX_MS, BACKOFF_TRY_MS * 2**m.retries)) / 1000)


POLICIES: dict[str, Policy] = {
    policy.name: policy
    for policy in (UnsafePolicy(), NaivePolicy(), OrderedPolicy(), ReleaseFirstPolicy(), BackoffPolicy())
}
