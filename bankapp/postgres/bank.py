"""Deposits with the postgres store: the Python guards, and the database's own tools.

Under `unsafe`, `lock`, `rlock` and `semaphore` a deposit runs the
domain's very code (`Bank._deposit`): take the Python guard, read the
balance, wait `race_window_ms`, write the sum. With one worker, `lock` is
exact, as in memory. With four, each process has its own `Lock`: two
deposits in two workers never see each other's lock, both read the same
balance, and the second write erases the first. Nothing in the code
changed; the lock just does not reach the other process.

The database guards are PostgreSQL's tools, which every process shares:

- `row-lock`: `SELECT ... FOR UPDATE`, window, `UPDATE`, one transaction.
  A second deposit's `FOR UPDATE` waits for the first to commit, then
  reads what it wrote;
- `advisory-lock`: `pg_advisory_xact_lock` on the account's key, then the
  plain read-window-write. The lock guards nothing by itself: it excludes
  only those who ask for the same key, like a Python lock, but in the one
  place every worker asks;
- `atomic-update`: one `UPDATE ... SET balance = balance + %s`. No
  read-modify-write in the application, so nothing to guard and no lock
  held by the application (the UPDATE's own row lock lasts one statement);
- `serializable`: the plain read-window-write in a SERIALIZABLE
  transaction. PostgreSQL lets both deposits read, then aborts one
  (`40001`) when it writes; the bank retries it (counted) and, after
  `SERIALIZABLE_ATTEMPTS`, answers 503.

Lock waits are bounded by `lock_timeout_ms` (PostgreSQL's `lock_timeout`,
`55P03`): a 503 lock timeout, as for a Python guard.

Batch deposit keeps its question, "may the holder take it again?", and
the database answers yes under all four: a row lock belongs to the
transaction and an advisory lock to the session, not to a thread, and the
batch and its amounts run in one transaction on one connection.

Deposits and transfers: transfers lock rows in the database, which a Python
lock knows nothing of, so with this store a deposit under `lock` and a
transfer on the same account can erase each other even with one worker.
Under `row-lock` they queue for the same row lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from psycopg import Connection, errors

from ..lab.admission import Gate
from ..lab.bank import Bank, InsufficientFunds, race_window
from ..lab.customers import covered, pair_for
from ..lab.guards import Guard, GuardSet
from ..lab.locks import LockTable
from ..lab.store import StoreUnavailable, UnknownAccount
from ..settings import Config
from . import sql
from .database import Database
from .locks import database_refusals
from .settings import CHECKING, DatabaseSettings, SettingsCheck, SettingsMoved, checking
from .store import (
    DatabaseLedger,
    PostgresStore,
    add_to_balance,
    read_balance,
    withdraw_if_pair_covers,
    write_balance,
)

#: What an operation answers: a balance, or a balance and the pair's sum the check read.
Answer = TypeVar("Answer")

#: Tries of a serializable deposit before it answers 503.
SERIALIZABLE_ATTEMPTS = 20
#: Keys of the advisory locks: (ACCOUNT_KEY, account number) for deposits.
ACCOUNT_KEY = 1
#: (the settings' version an operation's statement checks, or None when they were read; the settings)
Checked = tuple[int | None, Config]
Operation = Callable[..., Any]  # (a database guard, its connection, the settings) -> the operation's answer


class DatabaseBank(Bank):
    """The domain's `Bank`, whose balances live in PostgreSQL, with the database guards beside the Python ones."""

    stats: DatabaseLedger

    def __init__(
        self,
        db: Database,
        store: PostgresStore,
        settings: DatabaseSettings,
        stats: DatabaseLedger,
        guards: GuardSet,
        locks: LockTable,
        gate: Gate,
    ):
        super().__init__(store, self._request_config, stats, guards, locks, gate)
        self.db = db
        self.settings = settings
        self._request = threading.local()

    def _request_config(self) -> Config:
        """The settings this request read at its start: the domain's methods ask again, and get the same."""
        return getattr(self._request, "config", None) or self.settings.current

    def deposit(self, account_id: str, amount: int) -> int:
        return self._dispatch(
            "deposit",
            account_id,
            lambda: Bank.deposit(self, account_id, amount),
            lambda tool, conn, config: tool.deposit(conn, account_id, amount, config),
        )

    def withdraw(self, account_id: str, amount: int) -> int:
        return self._dispatch(
            "withdrawal",
            account_id,
            lambda: Bank.withdraw(self, account_id, amount),
            lambda tool, conn, config: tool.withdraw(conn, account_id, amount, config),
        )

    def customer_withdraw(self, customer_id: str, account_id: str, amount: int) -> tuple[int, int]:
        """The rule over two accounts (see `bankapp.lab.customers`) with the guard in force: a Python guard runs
        the domain's own path; a database guard reads both rows its way (`row-lock` locks both, in id order)."""
        pair = pair_for(self.store.account_ids(), customer_id, account_id)
        return self._dispatch(
            "customer withdrawal",
            account_id,
            lambda: Bank.customer_withdraw(self, customer_id, account_id, amount),
            lambda tool, conn, config: tool.customer_withdraw(conn, customer_id, pair, account_id, amount, config),
        )

    def batch_deposit(self, account_id: str, amounts: list[int]) -> int:
        return self._dispatch(
            "batch deposit",
            account_id,
            lambda: Bank.batch_deposit(self, account_id, amounts),
            lambda tool, conn, config: tool.batch(conn, account_id, amounts, config),
        )

    def _dispatch(
        self, operation: str, account_id: str, in_process: Callable[[], Answer], database: Callable[..., Answer]
    ) -> Answer:
        """Read the settings once (or check them in the guard's statement: `SettingsCheck`); run the domain's own
        path under a Python guard, or the database guard's.

        A database guard's wait for a row or an advisory lock holds a server
        thread as a Python guard's does, so it passes the same door (the
        lab's `Gate`): at most `threads - RESERVED_THREADS` requests of this
        worker wait on locks of either kind, and the operator's routes keep
        their threads (and their connections: the pool has one per thread).
        """
        checked: Checked = self.settings.provisional()
        while True:
            try:
                return self._attempt(operation, account_id, checked, in_process, database)
            except SettingsMoved as moved:  # nothing was changed: again, under the settings in force
                checked = (None, moved.config)

    def _attempt(
        self, operation: str, account: str, checked: Checked, in_process: Callable[[], Answer], database: Operation
    ) -> Answer:
        version, config = checked
        tool = TOOLS.get(config.deposit_guard)
        if version is not None and (tool is None or operation not in tool.checks_settings):
            version, config = None, self.settings.current  # read first: a round trip of its own
            tool = TOOLS.get(config.deposit_guard)
        self._request.config = config
        CHECKING.settings = None if version is None else SettingsCheck(self.settings, version, config)
        try:
            with database_refusals(self.db, self.stats, config, account):
                if tool is None:
                    return in_process()  # counts its own refusals
                self._known(account)
                with self.gate.enter(operation), self._counting_refusals():
                    return tool.run(self, config, lambda conn: database(tool, conn, config))
        finally:
            self._request.config = None
            CHECKING.settings = None

    def _known(self, account_id: str) -> None:
        if not self.store.exists(account_id):
            raise UnknownAccount(account_id)

    @contextmanager
    def exclusive(self, guard: Guard, account_id: str, config: Config) -> Iterator[None]:
        """Inside a held Python guard: one transaction for the read-window-write and its count.

        In memory this also takes the account's transfer lock. Here transfers
        lock rows in the database, maybe in another process, and a Python
        lock cannot keep them out, so nothing more is taken. The transaction
        makes the write and its count one: an audit's snapshot sees the money
        and its record together, or neither.
        """
        with self.db.transaction(config):
            yield


class DatabaseGuard:
    """A database guard: one transaction around the read-window-write; `read` says how the row is read."""

    name: str
    isolation: str | None = None

    #: The operations whose statement checks the settings' version itself (see `SettingsCheck`).
    checks_settings: frozenset[str] = frozenset()

    def read(self, conn: Connection, account_id: str, config: Config) -> int:
        raise NotImplementedError

    def run(self, bank: DatabaseBank, config: Config, work: Callable[[Connection], Answer]) -> Answer:
        with bank.db.transaction(config, isolation=self.isolation) as conn:
            return work(conn)

    def deposit(self, conn: Connection, account_id: str, amount: int, config: Config) -> int:
        balance = self.read(conn, account_id, config)
        race_window(config)
        return write_balance(conn, account_id, balance + amount, sql.Counts.deposit(amount))

    def withdraw(self, conn: Connection, account_id: str, amount: int, config: Config) -> int:
        balance = self.read(conn, account_id, config)
        if balance < amount:
            raise InsufficientFunds(account_id, balance, amount)
        race_window(config)
        return write_balance(conn, account_id, balance - amount, sql.Counts.withdrawal(amount))

    def customer_withdraw(
        self, conn: Connection, customer_id: str, pair: tuple[str, str], account_id: str, amount: int, config: Config
    ) -> tuple[int, int]:
        """Read both accounts this guard's way (in id order), check their sum, window, debit one."""
        combined = covered(customer_id, account_id, {each: self.read(conn, each, config) for each in pair}, amount)
        race_window(config)
        balance = self.read(conn, account_id, config) - amount
        return write_balance(conn, account_id, balance, sql.Counts.withdrawal(amount)), combined

    def batch(self, conn: Connection, account_id: str, amounts: list[int], config: Config) -> int:
        """Hold the account's guard, then deposit each amount by the single-deposit path, which takes it again."""
        balance = self.read(conn, account_id, config)
        for amount in amounts:
            balance = self.deposit(conn, account_id, amount, config)  # reads, so locks, again: granted at once
        return balance


class RowLock(DatabaseGuard):
    """`SELECT ... FOR UPDATE`: the row stays locked until the transaction commits.

    The transaction's settings (its `lock_timeout`, its name) ride with its
    first `FOR UPDATE`, set before the row is waited for: `BEGIN`, the
    locking read, the write, `COMMIT`, and no round trip of their own."""

    name = "row-lock"

    def __init__(self) -> None:
        self._first = threading.local()  # the settings the transaction's first read sets

    def run(self, bank: DatabaseBank, config: Config, work: Callable[[Connection], Answer]) -> Answer:
        with bank.db.transaction(config, configure=False) as conn:
            self._first.settings = bank.db.settings_params(conn, config)
            return work(conn)

    checks_settings = frozenset({"deposit", "withdrawal"})

    def read(self, conn: Connection, account_id: str, config: Config) -> int:
        """The first read of a transaction sets its settings; in a deposit it also checks the lab's: when they
        moved, nothing is locked or waited for (under an old `lock_timeout`), and the deposit runs again."""
        settings, self._first.settings = getattr(self._first, "settings", None), None
        check = checking()
        if settings is None or check is None:
            return read_balance(conn, account_id, lock="wait", settings=settings)
        try:
            balance = read_balance(conn, account_id, lock="wait", settings={**settings, "version": check.version})
        except UnknownAccount:
            check.read(conn)  # no row: the settings moved (raises), or the account is unknown
            raise
        check.found(check.version, None)
        return balance


class AdvisoryLock(DatabaseGuard):
    """`pg_advisory_xact_lock(1, n)` for account number n, then a plain read: a lock by agreement."""

    name = "advisory-lock"

    def __init__(self) -> None:
        self._team = threading.local()  # the first key of the bank's team (one guard serves every team)

    def run(self, bank: DatabaseBank, config: Config, work: Callable[[Connection], Answer]) -> Answer:
        self._team.key = bank.db.key(ACCOUNT_KEY)
        return super().run(bank, config, work)

    def read(self, conn: Connection, account_id: str, config: Config) -> int:
        key = getattr(self._team, "key", ACCOUNT_KEY)
        conn.execute(sql.ADVISORY_XACT_LOCK, (key, config.account_ids.index(account_id)))
        return read_balance(conn, account_id)


class AtomicUpdate(DatabaseGuard):
    """`UPDATE ... SET balance = balance + %s RETURNING balance`: no read-modify-write to guard."""

    name = "atomic-update"

    def run(self, bank: DatabaseBank, config: Config, work: Callable[[Connection], Answer]) -> Answer:
        with bank.db.connection() as conn:  # one statement is its own transaction: no BEGIN, no COMMIT to send
            return work(conn)

    checks_settings = frozenset({"deposit", "withdrawal"})

    def deposit(self, conn: Connection, account_id: str, amount: int, config: Config) -> int:
        balance = self._add(conn, account_id, amount, sql.Counts.deposit(amount), config)
        if balance is None:
            raise UnknownAccount(account_id)
        return balance

    def withdraw(self, conn: Connection, account_id: str, amount: int, config: Config) -> int:
        balance = self._add(conn, account_id, -amount, sql.Counts.withdrawal(amount), config, floor=0)
        if balance is None:  # the guarded update changed nothing: the balance did not cover it
            raise InsufficientFunds(account_id, read_balance(conn, account_id), amount)
        return balance

    @staticmethod
    def _add(
        conn: Connection, account: str, delta: int, counts: sql.Counts, config: Config, floor: int | None = None
    ) -> int | None:
        """`add_to_balance`, checking the settings' version in the same statement when the operation asks it."""
        check = checking()
        balance, latest, body = add_to_balance(conn, account, delta, counts, config, floor, check and check.version)
        if check is not None:
            check.found(latest, body)
        return balance

    def customer_withdraw(
        self, conn: Connection, customer_id: str, pair: tuple[str, str], account_id: str, amount: int, config: Config
    ) -> tuple[int, int]:
        """One statement: debit if the pair's sum covers it. Atomic for one row, not for the rule over two."""
        written = withdraw_if_pair_covers(conn, account_id, pair, amount, sql.Counts.withdrawal(amount))
        if written is None:
            balances = {each: read_balance(conn, each) for each in pair}
            covered(customer_id, account_id, balances, amount)  # raises: the sum did not cover it
            raise StoreUnavailable(f"customer {customer_id}: the guarded withdrawal changed nothing; retry it")
        return written

    def batch(self, conn: Connection, account_id: str, amounts: list[int], config: Config) -> int:
        with conn.transaction():  # all the amounts or none
            balance = read_balance(conn, account_id)
            for amount in amounts:
                balance = self.deposit(conn, account_id, amount, config)
        return balance


class Serializable(DatabaseGuard):
    """The plain read-window-write in a SERIALIZABLE transaction, retried when PostgreSQL aborts it."""

    name = "serializable"
    isolation = sql.SERIALIZABLE

    def read(self, conn: Connection, account_id: str, config: Config) -> int:
        return read_balance(conn, account_id)

    def run(self, bank: DatabaseBank, config: Config, work: Callable[[Connection], Answer]) -> Answer:
        """Try up to `SERIALIZABLE_ATTEMPTS` times; a refusal says it was PostgreSQL's and how often it retried.

        Each failed attempt is counted (`serialization_retries` in `/stats`);
        a deposit refused after all of them is counted too, with the retries
        it spent (`serialization_failures`), and its 503 names the SQLSTATE
        and PostgreSQL's own message of the last attempt: the deposit was not
        lost to a bug, the database refused it that many times in a row.
        """
        last: errors.Error | None = None
        for attempt in range(1, SERIALIZABLE_ATTEMPTS + 1):
            try:
                return super().run(bank, config, work)
            except (errors.SerializationFailure, errors.DeadlockDetected) as error:
                last = error
                bank.stats.counters.add("deposits.serialization_retries")
                if attempt < SERIALIZABLE_ATTEMPTS:
                    time.sleep(random.uniform(0, min(50, 2**attempt)) / 1000)  # full jitter, as backoff does
        bank.stats.refused("serialization_failure")
        retries = SERIALIZABLE_ATTEMPTS - 1
        bank.stats.counters.add("deposits.serialization_refused_retries", retries)
        said = (last.diag.message_primary if last else None) or "could not serialize access"
        sqlstate = last.sqlstate if last else "40001"
        raise StoreUnavailable(
            f"serializable: a serialization failure, not a bug: PostgreSQL refused this deposit's transaction "
            f"{SERIALIZABLE_ATTEMPTS} times in a row (the last: {sqlstate} {said}); it was retried {retries} times, "
            "then given up, and never applied: retry it",
            slug="serialization-failure",
            title="Serialization failure",
            attempts=SERIALIZABLE_ATTEMPTS,
            retries=retries,
            sqlstate=sqlstate,
            postgres_message=said,
        )


TOOLS: dict[str, DatabaseGuard] = {
    tool.name: tool for tool in (RowLock(), AdvisoryLock(), AtomicUpdate(), Serializable())
}
