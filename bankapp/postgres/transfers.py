"""Transfers with the postgres store: row locks under each policy, and PostgreSQL's own deadlock detector.

The five policies keep their meaning, one level up: a transfer's lock is
the account's row lock (`SELECT ... FOR UPDATE`), held by its transaction
until it commits or rolls back, in whichever process or machine it runs.

- `unsafe`: no transaction, no lock: read, window, write on each account.
- `naive`: lock `from`, debit, window, lock `to`, credit, commit. Two
  opposing transfers each hold one row and wait for the other's:
  PostgreSQL finds the cycle after `deadlock_timeout` (set from
  `deadlock_check_ms` where the role may) and aborts one transaction
  (`40P01`). Its rollback puts the debit back; the victim answers 409 with
  PostgreSQL's own description of the cycle, and the other commits.
- `ordered`: lock both rows in account-id order: no cycle can form.
- `release-first`: debit and commit, window, credit and commit: never
  holds one row while waiting for another, so no deadlock, but between
  the two commits the money is in neither account, and an audit sees it.
- `backoff`: wait for the first row (at most what is left of
  `lock_timeout_ms`), take the second with `NOWAIT`; refused (`55P03`),
  roll back, which gives up the first, wait at random, retry starting
  with the row that refused, as the in-memory policy does.

A transfer that fails rolls back: nothing of it is visible, and its
counts (which ride with its writes) are gone with it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from psycopg import Connection, errors

from ..lab.admission import Gate
from ..lab.bank import InsufficientFunds, race_window
from ..lab.guards import GuardTimeout
from ..lab.store import UnknownAccount
from ..lab.transfers import BACKOFF_MAX_MS, BACKOFF_TRY_MS, SameAccount, audit_answer
from ..settings import Config
from . import sql
from .counters import FLIGHT_KEY, Counters
from .database import Database, one, release_all
from .locks import DatabaseDeadlock, DatabaseLock, debug_locks, record_deadlock
from .store import read_balance, write_balance


class Leg:
    """One transfer on one connection: its config, accounts, amount and retries."""

    def __init__(self, config: Config, source: str, target: str, amount: int):
        self.config, self.source, self.target, self.amount = config, source, target, amount
        self.retries = 0
        self.balances: dict[str, int] = {}  # as this transfer wrote them

    def debit(self, conn: Connection, locked: bool = True) -> None:
        """Take the amount from `source`, whose row this transaction holds (or, unlocked, just read)."""
        balance = read_balance(conn, self.source, lock="wait" if locked else "")
        if balance < self.amount:
            raise InsufficientFunds(self.source, balance, self.amount)
        if not locked:
            race_window(self.config)
        self.balances[self.source] = write_balance(
            conn, self.source, balance - self.amount, sql.Counts.moved(-self.amount)
        )

    def credit(self, conn: Connection, account: str | None = None, locked: bool = True) -> None:
        account = account or self.target
        balance = read_balance(conn, account, lock="wait" if locked else "")
        if not locked:
            race_window(self.config)
        self.balances[account] = write_balance(conn, account, balance + self.amount, sql.Counts.moved(self.amount))


def unsafe(desk: DatabaseTransferDesk, leg: Leg) -> None:
    """No transaction, no lock: each account read, window, written; money appears and vanishes."""
    with desk.db.connection() as conn:
        leg.debit(conn, locked=False)
        leg.credit(conn, locked=False)


def naive(desk: DatabaseTransferDesk, leg: Leg) -> None:
    """Lock `from`, debit, window, lock `to`, credit: all four conditions, so opposing transfers deadlock."""
    with desk.db.transaction(leg.config) as conn:
        leg.debit(conn)
        race_window(leg.config)
        leg.credit(conn)


def ordered(desk: DatabaseTransferDesk, leg: Leg) -> None:
    """Lock both rows in account-id order, then move: no circular wait."""
    with desk.db.transaction(leg.config) as conn:
        for account in sorted((leg.source, leg.target)):
            read_balance(conn, account, lock="wait")
        leg.debit(conn)
        race_window(leg.config)
        leg.credit(conn)


def release_first(desk: DatabaseTransferDesk, leg: Leg) -> None:
    """Debit and commit; window; credit and commit: no hold and wait, money in flight between the commits."""
    with desk.db.transaction(leg.config) as conn:
        leg.debit(conn)
    race_window(leg.config)  # the money is in neither account here, and committed so
    try:
        with desk.db.transaction(leg.config) as conn:
            leg.credit(conn)
    except BaseException:
        # put the debit back, waiting as long as it takes: holding nothing, this cannot deadlock
        with desk.db.transaction(leg.config.model_copy(update={"lock_timeout_ms": None})) as conn:
            leg.credit(conn, account=leg.source)
        raise


def backoff(desk: DatabaseTransferDesk, leg: Leg) -> None:
    """Wait for the first row, take the second with NOWAIT; refused, roll back, wait at random, retry."""
    timeout = leg.config.lock_timeout()
    deadline = None if timeout is None else time.monotonic() + timeout
    first, second = leg.source, leg.target
    while True:
        left = None if deadline is None else max(0.001, deadline - time.monotonic())
        config = leg.config.model_copy(update={"lock_timeout_ms": None if left is None else left * 1000})
        try:
            with desk.db.transaction(config) as conn:
                read_balance(conn, first, lock="wait")
                if first == leg.source:
                    leg.debit(conn)
                    race_window(leg.config)
                read_balance(conn, second, lock="nowait")
                if second == leg.source:
                    leg.debit(conn)
                    race_window(leg.config)
                leg.credit(conn)
                return
        except errors.LockNotAvailable:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            first, second = second, first  # start again with the row that refused
        leg.retries += 1
        desk.counters.add("transfers.retries")
        time.sleep(random.uniform(0, min(BACKOFF_MAX_MS, BACKOFF_TRY_MS * 2**leg.retries)) / 1000)


POLICIES: dict[str, Callable[[DatabaseTransferDesk, Leg], None]] = {
    "unsafe": unsafe,
    "naive": naive,
    "ordered": ordered,
    "release-first": release_first,
    "backoff": backoff,
}


class DatabaseTransferDesk:
    """The transfer desk of a fleet: moves money under `transfer_policy`, audits, shows the locks."""

    def __init__(self, db: Database, config: Callable[[], Config], counters: Counters, gate: Gate):
        self.db = db
        self._config = config
        self.counters = counters
        self.gate = gate  # this worker's share of the cap on requests waiting on locks

    def transfer(self, source: str, target: str, amount: int) -> dict[str, Any]:
        """Move `amount` cents from `source` to `target`; all of it or nothing."""
        config = self._config()
        for account in (source, target):
            if account not in config.account_ids:
                raise UnknownAccount(account)
        if source == target:
            raise SameAccount(source)
        leg = Leg(config, source, target, amount)
        with self.gate.enter("transfer"):
            return self._transfer(config, leg)

    def _transfer(self, config: Config, leg: Leg) -> dict[str, Any]:
        """On one connection, holding a shared advisory lock while in flight: `in_flight` is counted from the
        locks held, so a transfer cut by the database going away never leaves it raised (see `sql.HOLD_SHARED`).
        """
        with self.db.connection() as conn:
            try:
                conn.execute(sql.HOLD_SHARED, (self.db.key(FLIGHT_KEY), 2))
                conn.execute(sql.HOLDERS_AND_PEAK, (self.db.key(FLIGHT_KEY), 2, "transfers.in_flight"))
                return self._run(config, leg)
            finally:
                release_all(conn)

    def _run(self, config: Config, leg: Leg) -> dict[str, Any]:
        source, target, amount = leg.source, leg.target, leg.amount
        try:
            POLICIES[config.transfer_policy](self, leg)
        except errors.DeadlockDetected as error:
            self.counters.add("transfers.deadlock_victims")
            raise DatabaseDeadlock(record_deadlock(self.db, error, (source, target))) from None
        except errors.LockNotAvailable:
            self.counters.add("transfers.lock_timeouts")
            lock = DatabaseLock("row lock", f"{source} or {target}")
            raise GuardTimeout(lock, config.lock_timeout(), self_deadlock=False) from None
        except InsufficientFunds:
            self.counters.add("transfers.insufficient_funds")
            raise
        self.counters.add("transfers.committed")
        return {
            "from": {"id": source, "balance": leg.balances[source]},
            "to": {"id": target, "balance": leg.balances[target]},
            "amount": amount,
            "policy": config.transfer_policy,
            "retries": leg.retries,
        }

    def audit(self) -> dict[str, Any]:
        """Every balance in one snapshot (one statement), against the expected total; no lock taken.

        In memory the audit takes every account lock to see a state between
        transfers. PostgreSQL's MVCC gives that for free: one statement
        reads one snapshot, in which each committed transaction is whole or
        absent. So `naive` and `ordered` transfers are never half seen, and
        a wrong total is money really in flight (`release-first`, between
        its commits) or created and destroyed (`unsafe`).
        """
        config = self._config()
        with self.db.connection() as conn:
            total, expected, negative, accounts = one(conn.execute(sql.AUDIT))
        self.counters.add("transfers.audits")
        if total != expected:
            self.counters.add("transfers.wrong_total_reads")
        return audit_answer(total, expected, list(negative), config.transfer_policy, accounts)

    def debug_locks(self) -> dict[str, Any]:
        config = self._config()
        return {"policy": config.transfer_policy, **debug_locks(self.db, config)}

    @staticmethod
    def report(
        config: Config, counters: dict[str, int], gauges: dict[str, Any], ledger: dict[str, Any]
    ) -> dict[str, Any]:
        """`/stats`' transfers section, from one snapshot."""
        total = sum(row["balance"] for row in ledger["per_account"].values())
        opening = total - ledger["balance_change"]
        expected = opening + ledger["acknowledged_amount"] - ledger["withdrawn_amount"]
        in_flight, peak = gauges.get("transfers.in_flight", (0, 0))
        names = ("committed", "deadlock_victims", "lock_timeouts", "retries", "insufficient_funds", "audits")
        return {
            "policy": config.transfer_policy,
            **{name: counters.get(f"transfers.{name}", 0) for name in names},
            "wrong_total_reads": counters.get("transfers.wrong_total_reads", 0),
            "in_flight": in_flight,
            "peak_in_flight": peak,
            "deadlocks": counters.get("transfers.deadlock_victims", 0),
            "total": total,
            "expected_total": expected,
            "total_conserved": total == expected,
            "negative_balances": sum(1 for row in ledger["per_account"].values() if row["balance"] < 0),
        }
