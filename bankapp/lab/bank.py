"""The bank: deposits, withdrawals and batch deposits under a chosen guard.

Every change of a balance is a read-modify-write: read the balance, wait
`race_window_ms` (standing for real work, say a database round trip), write
the new balance. Two threads that interleave there both read the same old
balance, and the second write erases the first deposit: a lost update. The
guard of the account, chosen by `deposit_guard`, decides whether they can.

Deposits are not the only writers of a balance: transfers (and the audit,
which reads) use the account's `AccountLock` from the `LockTable`. Two
different locks guarding the same data do not exclude each other: a deposit
holding its `Lock` guard and a transfer holding the account lock would both
be inside the read-modify-write, and one of their updates would be lost. The
rule is one lock per piece of data, so under a guard that excludes, the
deposit also takes the account's lock around its read-window-write (see
`Bank.exclusive`). It holds no other account lock while it waits for that
one, so it can never close a wait-for cycle.

Every deposit, withdrawal and batch passes the lab's `Gate` (see `lab`):
refused at once when too many requests already wait on locks, held back
while a reset runs.

`Bank` knows nothing of HTTP; unit tests drive it with plain threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType

from ..settings import Config
from .admission import Gate
from .guards import Guard, GuardSet, GuardTimeout, hold
from .ledger import Tally
from .locks import DeadlockVictim, LockTable
from .store import Store, UnknownAccount


class InsufficientFunds(Exception):
    def __init__(self, account_id: str, balance: int, amount: int):
        super().__init__(f"account {account_id} holds {balance} cents, fewer than the {amount} asked for")
        self.account_id = account_id
        self.balance = balance
        self.amount = amount


def race_window(config: Config) -> None:
    """The gap between a read and its write, where a race gets in."""
    if config.race_window_ms > 0:
        time.sleep(config.race_window_ms / 1000)


#: What a block takes when it has nothing to take (reusable, unlike a new `nullcontext()` a call).
NOTHING = nullcontext()


class CountingRefusals:
    """`with` it around an operation: why it was refused is counted, so `/stats` shows lock timeouts too.

    A plain class rather than a `@contextmanager` generator, and one per
    bank, reused: it keeps no state of its own, and every deposit passes it.
    """

    __slots__ = ("stats",)

    def __init__(self, stats: Tally):
        self.stats = stats

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if isinstance(error, GuardTimeout):
            self.stats.refused("self_deadlock" if error.self_deadlock else "lock_timeout")
        elif isinstance(error, InsufficientFunds):
            self.stats.refused("insufficient_funds")
        elif isinstance(error, DeadlockVictim):  # a self-deadlock the operator broke
            self.stats.refused("deadlock_victim")


class AccountHold:
    """`with` it: the account's lock (the one transfers take) is held inside the block.

    Waits at most `timeout` seconds (`GuardTimeout`) and never checks for
    deadlock (see `Bank.exclusive`).
    """

    __slots__ = ("account_id", "lock", "locks", "timeout")

    def __init__(self, locks: LockTable, account_id: str, timeout: float | None):
        self.locks = locks
        self.account_id = account_id
        self.timeout = timeout

    def __enter__(self) -> None:
        self.lock = self.locks.acquire(self.account_id, self.timeout, check_after=None)

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()


class Bank:
    """Accounts whose balances change under the guard `deposit_guard` names."""

    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        stats: Tally,
        guards: GuardSet,
        locks: LockTable,
        gate: Gate,
    ):
        self.store = store
        self._config = config
        self.stats = stats
        self.guards = guards
        self.locks = locks  # the same table the transfer desk and the audit use
        self.gate = gate
        self._refusals = CountingRefusals(stats)

    def guard_for(self, account_id: str, config: Config) -> Guard:
        """The guard of one account under the settings of this request."""
        if not self.store.exists(account_id):
            raise UnknownAccount(account_id)
        return self.guards.get(config.deposit_guard, account_id, config.deposit_permits)

    def balance(self, account_id: str) -> int:
        return self.store.read(account_id)

    def balances(self) -> dict[str, int]:
        return self.store.snapshot()

    def deposit(self, account_id: str, amount: int) -> int:
        """Add `amount` cents; returns the balance this deposit wrote."""
        config = self._config()
        with self.gate.enter("deposit"), self._counting_refusals():
            return self._deposit(self.guard_for(account_id, config), account_id, amount, config)

    def _counting_refusals(self) -> CountingRefusals:
        """Count why a request was refused: `/stats` shows lock timeouts too."""
        return self._refusals

    def exclusive(self, guard: Guard, account_id: str, config: Config) -> AbstractContextManager[None]:
        """Inside a held `guard`: also keep transfers and audits off the account, if the guard excludes.

        An excluding guard (`lock`, `rlock`, a semaphore of 1) keeps other
        deposits out, but transfers never take it: they take the account's
        `AccountLock`. So the deposit takes that lock too, around its
        read-window-write only, waiting at most `lock_timeout_ms`
        (`GuardTimeout`, a 503 lock timeout). A guard that does not exclude
        (`unsafe`, a semaphore of N > 1) takes nothing more: its lesson is
        the lost update, and an extra lock would hide it.

        The wait never checks for deadlock (`check_after=None`): the deposit
        holds no account lock while it waits, so no one can be waiting for
        it, it cannot be in a cycle and must never be picked as a victim.
        """
        if not guard.excludes:
            return NOTHING
        return AccountHold(self.locks, account_id, config.lock_timeout())

    def _deposit(self, guard: Guard, account_id: str, amount: int, config: Config, account_locked: bool = False) -> int:
        """One read-window-write under `guard`; `account_locked` when a batch already holds the account lock."""
        with (
            hold(guard, config.lock_timeout()),
            NOTHING if account_locked else self.exclusive(guard, account_id, config),
        ):
            balance = self.store.read(account_id)
            race_window(config)
            balance += amount
            self.store.write(account_id, balance)
            # counted before the account lock goes, so an audit never sees the money without its record
            self.stats.deposited(account_id, amount)
        return balance

    def batch_deposit(self, account_id: str, amounts: list[int]) -> int:
        """Hold the account's guard for the whole batch, then deposit each amount.

        Each amount goes through the single-deposit path, which acquires the
        guard again. An `RLock` lets its owner in; a `Lock` (or a semaphore
        whose permits are all taken) makes the thread wait for itself: the
        nested acquire times out and nothing of the batch is applied. The
        account lock (what keeps transfers out) is taken once for the whole
        batch, so under `rlock` nothing can refuse an amount half way.
        """
        config = self._config()
        guard = self.guard_for(account_id, config)
        # Only a reentrant guard gets past its nested acquire; it takes the
        # account lock once, for the whole batch, so nothing refuses an amount half way.
        whole_batch = guard.reentrant and guard.excludes
        with (
            self.gate.enter("batch deposit"),
            self._counting_refusals(),
            hold(guard, config.lock_timeout()),
            self.exclusive(guard, account_id, config) if whole_batch else NOTHING,
        ):
            balance = self.store.read(account_id)
            applied: list[int] = []
            try:
                for amount in amounts:
                    balance = self._deposit(guard, account_id, amount, config, account_locked=whole_batch)
                    applied.append(amount)
            except BaseException:
                self._undo(account_id, applied)
                raise
        return balance

    def _undo(self, account_id: str, applied: list[int]) -> None:
        """Take back the amounts of a batch that failed part way: a refused batch changes nothing.

        Under `lock` the first nested acquire fails, so nothing was applied.
        A semaphore of N > 1 can let some amounts in and then refuse one
        (another thread took the last permit); those come out again here,
        still inside the batch's guard.
        """
        for amount in applied:
            self.store.write(account_id, self.store.read(account_id) - amount)
            self.stats.undeposited(account_id, amount)

    def withdraw(self, account_id: str, amount: int) -> int:
        """Take `amount` cents if the balance covers it; check, then act.

        Unguarded, two withdrawals can both pass the check before either
        debits, and the account goes below zero: the check-then-act race.
        """
        config = self._config()
        guard = self.guard_for(account_id, config)
        with (
            self.gate.enter("withdrawal"),
            self._counting_refusals(),
            hold(guard, config.lock_timeout()),
            self.exclusive(guard, account_id, config),
        ):
            available = self.store.read(account_id)
            if available < amount:
                raise InsufficientFunds(account_id, available, amount)
            race_window(config)
            balance = self.store.read(account_id) - amount
            self.store.write(account_id, balance)
            self.stats.withdrew(account_id, amount)
        return balance

    def customer_withdraw(self, customer_id: str, account_id: str, amount: int) -> tuple[int, int]:
        """Take `amount` from one of the customer's two accounts if their combined balance covers it.

        Returns the account's new balance and the combined balance the check
        read (the pair's sum before this debit, as this withdrawal saw it).
        Check, then act, over two accounts: unguarded, two withdrawals from
        the two accounts both pass the check and the sum goes below zero
        (write skew, see `customers`). An excluding guard is taken on both
        accounts, in id order, so the check and the debit see no other
        customer withdrawal in between.
        """
        from .customers import covered, pair_for

        config = self._config()
        pair = pair_for(self.store.account_ids(), customer_id, account_id)
        first, second = (self.guard_for(each, config) for each in pair)
        timeout = config.lock_timeout()
        with (
            self.gate.enter("customer withdrawal"),
            self._counting_refusals(),
            hold(first, timeout),
            hold(second, timeout),
            self.exclusive(first, pair[0], config),
            self.exclusive(second, pair[1], config),
        ):
            combined = covered(customer_id, account_id, {each: self.store.read(each) for each in pair}, amount)
            race_window(config)
            balance = self.store.read(account_id) - amount
            self.store.write(account_id, balance)
            self.stats.withdrew(account_id, amount)
        return balance, combined

    def reset(self) -> None:
        self.store.reset()
        self.stats.reset()
