"""Transfers between accounts, five lock policies, and the bank audit.

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

`TransferDesk` knows nothing of HTTP; unit tests drive it with plain threads.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import ClassVar

from ..settings import Config
from .bank import InsufficientFunds, race_window
from .guards import GuardTimeout
from .ledger import LedgerStats
from .locks import AccountLock, DeadlockVictim, LockTable
from .store import Store, UnknownAccount

#: How long `backoff` tries for the second lock before it gives everything up.
BACKOFF_TRY_MS = 2
#: The cap of `backoff`'s random wait between attempts.
BACKOFF_MAX_MS = 50


class SameAccount(ValueError):
    def __init__(self, account_id: str):
        super().__init__(f"a transfer needs two different accounts; from and to are both {account_id}")
        self.account_id = account_id


class Move:
    """One transfer in progress: the locks it holds and the changes it made."""

    def __init__(self, desk: TransferDesk, config: Config, source: str, target: str, amount: int):
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
    """Try `from`, debit, try `to` briefly; on failure give back everything, wait at random, retry.

    Breaks no preemption, from the inside: a thread that cannot get its
    second lock preempts itself, undoing its debit and releasing `from`, so
    whoever waited for it can go on. The random wait (growing with each
    attempt, "full jitter") keeps two opposing transfers from retrying in
    lockstep forever (a livelock). `from` is only tried as well, never
    queued for: a queue of threads blocked on `from` would refill it the
    moment a thread backs off, and the collision would start again.
    Retries are counted in `/stats`.
    """

    name = "backoff"

    def move(self, m: Move) -> None:
        timeout = m.config.lock_timeout()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if m.try_lock(m.source, BACKOFF_TRY_MS):
                m.debit()
                m.window()
                if m.try_lock(m.target, BACKOFF_TRY_MS):
                    m.credit()
                    return
                m.undo(relock=True)
                m.unlock_all()
            if deadline is not None and time.monotonic() >= deadline:
                raise GuardTimeout(m.desk.locks[m.target], timeout, self_deadlock=False)
            m.retries += 1
            m.desk.counters.add("retries")
            time.sleep(random.uniform(0, min(BACKOFF_MAX_MS, BACKOFF_TRY_MS * 2**m.retries)) / 1000)


POLICIES: dict[str, Policy] = {
    policy.name: policy
    for policy in (UnsafePolicy(), NaivePolicy(), OrderedPolicy(), ReleaseFirstPolicy(), BackoffPolicy())
}


class TransferCounters:
    """Transfer and audit counters under their own small lock, exact under any policy."""

    NAMES = (
        "committed",
        "deadlock_victims",
        "lock_timeouts",
        "retries",
        "insufficient_funds",
        "audits",
        "wrong_total_reads",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self.NAMES, 0)
            self._in_flight = 0
            self._peak_in_flight = 0

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def report(self) -> dict:
        with self._lock:
            return {**self._counts, "in_flight": self._in_flight, "peak_in_flight": self._peak_in_flight}


class TransferDesk:
    """Moves money between accounts under `transfer_policy`, and audits the bank."""

    def __init__(self, store: Store, config: Callable[[], Config], ledger: LedgerStats, locks: LockTable):
        self.store = store
        self._config = config
        self.ledger = ledger
        self.locks = locks
        self.counters = TransferCounters()

    def transfer(self, source: str, target: str, amount: int) -> dict:
        """Move `amount` cents from `source` to `target`; all of it or nothing."""
        config = self._config()
        for account in (source, target):
            if not self.store.exists(account):
                raise UnknownAccount(account)
        if source == target:
            raise SameAccount(source)
        policy = POLICIES[config.transfer_policy]
        m = Move(self, config, source, target, amount)
        self.counters.started()
        try:
            policy.move(m)
            balances = {source: self.store.read(source), target: self.store.read(target)}
        except BaseException as error:
            m.undo(relock=policy.locks)  # still holding what it held: nobody saw the half-done transfer
            self._count_failure(error)
            raise
        finally:
            m.unlock_all()
            self.counters.finished()
        self.ledger.landed([(source, -amount), (target, amount)], pending=m.changes)
        self.counters.add("committed")
        return {
            "from": {"id": source, "balance": balances[source]},
            "to": {"id": target, "balance": balances[target]},
            "amount": amount,
            "policy": policy.name,
            "retries": m.retries,
        }

    def _count_failure(self, error: BaseException) -> None:
        if isinstance(error, DeadlockVictim):
            self.counters.add("deadlock_victims")
        elif isinstance(error, GuardTimeout):
            self.counters.add("lock_timeouts")
        elif isinstance(error, InsufficientFunds):
            self.counters.add("insufficient_funds")

    def expected_total(self, balances: dict[str, int]) -> int:
        """What the bank should hold: the opening balances plus acknowledged deposits minus withdrawals.

        Transfers only move money, so they never change it.
        """
        deposits = self.ledger.report(balances)
        opening = self.ledger.initial_balance * len(balances)
        return opening + deposits["acknowledged_amount"] - deposits["withdrawn_amount"]

    def audit(self) -> dict:
        """Read every balance under every account's lock, taken in id order.

        Holding all the locks at once, the audit sees the bank between
        transfers, never inside one that takes locks: the total must equal
        the expected total and no balance may be negative (the bank
        invariants Jepsen checks). It takes the locks in the same order as
        `ordered`, so it cannot deadlock with it; against `naive` it can be
        in a cycle, and then it may be the victim (409). A wrong total means
        the policy let money be in flight (`release-first`) or created or
        destroyed it (`unsafe`).

        Deposits and withdrawals under an excluding guard take the same
        account locks (and are counted before they let go), so the audit
        sees each of them wholly or not at all; under a guard that does not
        exclude they race with the audit as they race with each other.
        """
        config = self._config()
        timeout, check_after = config.lock_timeout(), config.deadlock_check_ms / 1000
        held: list[AccountLock] = []
        try:
            for account in sorted(self.store.account_ids()):
                held.append(self.locks.acquire(account, timeout, check_after))
            balances = {account: self.store.read(account) for account in self.store.account_ids()}
            # still under every lock: a deposit is counted before it lets its account lock go
            expected = self.expected_total(balances)
        finally:
            while held:
                held.pop().release()
        total = sum(balances.values())
        negative = sorted(account for account, balance in balances.items() if balance < 0)
        self.counters.add("audits")
        if total != expected:
            self.counters.add("wrong_total_reads")
        return {
            "total": total,
            "expected_total": expected,
            "difference": total - expected,
            "negative_accounts": negative,
            "consistent": total == expected and not negative,
            "policy": config.transfer_policy,
            "accounts": len(balances),
        }

    def debug_locks(self) -> dict:
        return {"policy": self._config().transfer_policy, **self.locks.snapshot()}

    def stats(self) -> dict:
        """Counters for `/stats`; `total` is read at once, without locks (exact at rest)."""
        balances = self.store.snapshot()
        total = sum(balances.values())
        expected = self.expected_total(balances)
        return {
            "policy": self._config().transfer_policy,
            **self.counters.report(),
            "deadlocks": self.locks.detected,
            "total": total,
            "expected_total": expected,
            "total_conserved": total == expected,
            "negative_balances": sum(1 for balance in balances.values() if balance < 0),
        }

    def reset(self) -> None:
        self.counters.reset()
        self.locks.reset()
