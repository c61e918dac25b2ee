"""Balances, stock and the bank's ledger in PostgreSQL, behind the domain's own interfaces.

`PostgresStore` is a `Store`: single reads and single writes, each one
statement on the thread's connection (autocommit, or inside the
transaction the caller opened). The read-modify-write stays the domain's,
and so does the race: two workers that read the same balance and each
write their own sum lose one deposit exactly as two threads do.

`StockTable` is the shop's `Inventory` the same way, and `DatabaseLedger`
is `LedgerStats` with its counts in the accounts' rows: relative updates
(`deposits = deposits + 1`), exact whichever guard is under test and
however many workers count at once.

Forensics, fleet-wide: every write logs itself in `bankapp_writes` (in its
own statement, see `write_balance`); a write over a newer version than
it read walks that log (`record_erasure`) and records the erasure in
`bankapp_races`, a table written only when a race happens, with its totals
in the counters. Two workers that erase each other's deposits are named
as two threads are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from ..lab.forensics import RECENT, ReadsSeen, Write, described, erasure, totals_json, who
from ..lab.shop import CATALOGUE
from ..lab.store import StoreUnavailable, UnknownAccount
from ..settings import Config
from . import sql
from .counters import Counters
from .database import Database, lock_timeout_setting, one

#: How many versions an erasure's walk fetches from the writes log at a time.
WALK_FETCH = 64
#: What each thread last read of each account: the version a write was computed from.
SEEN = ReadsSeen()
#: Writes the log keeps per account; every `PRUNE_EVERY`th version of an account prunes what is older.
HISTORY, PRUNE_EVERY = 4096, 256
#: A write that counts nothing (the store's own `write`).
NOTHING_COUNTED = sql.Counts()


class PostgresStore:
    """Balances in `bankapp_accounts`; which accounts exist is in the settings (`accounts`)."""

    def __init__(self, db: Database, config: Callable[[], Config]):
        self.db = db
        self._config = config

    def account_ids(self) -> tuple[str, ...]:
        return self._config().account_ids

    def exists(self, account_id: str) -> bool:
        return account_id in self.account_ids()

    def read(self, account_id: str) -> int:
        with self.db.connection() as conn:
            return read_balance(conn, account_id)

    def write(self, account_id: str, balance: int) -> None:
        with self.db.connection() as conn:
            write_balance(conn, account_id, balance)

    def snapshot(self) -> dict[str, int]:
        with self.db.connection() as conn:
            return dict(conn.execute(sql.BALANCES).fetchall())

    def reset(self) -> None:
        with self.db.connection() as conn:
            conn.execute(sql.RESET_ACCOUNTS)

    def races(self, limit: int = RECENT) -> dict[str, Any]:
        """The newest `limit` erasures of the whole fleet, and totals of them all, from one snapshot."""
        with self.db.transaction(isolation=sql.SNAPSHOT) as conn:
            rows = conn.execute(sql.RECENT_RACES, (limit,)).fetchall()
            counters = dict(conn.execute(sql.COUNTERS).fetchall())
        names = ("erasures", "writes_erased", "writes_revived", "lost_updates", "incomplete")
        totals = totals_json(*(counters.get(f"races.{name}", 0) for name in names))
        races = [described({"id": number, **body}) for number, body in rows]
        return {"store": "postgres", **totals, "kept": RECENT, "races": races}


# --- the write path: every balance read and write of the postgres store ---------------------------------------


#: (sets deadlock_timeout, checks the settings' version) -> the statement of a transaction's first locking read.
LOCKS_CONFIGURED = {
    (False, False): sql.LOCK_BALANCE_CONFIGURED,
    (True, False): sql.LOCK_BALANCE_CONFIGURED_AND_DEADLOCK_TIMEOUT,
    (False, True): sql.LOCK_BALANCE_CONFIGURED_IF_SETTINGS,
    (True, True): sql.LOCK_BALANCE_CONFIGURED_AND_DEADLOCK_TIMEOUT_IF_SETTINGS,
}


def read_balance(conn: Connection, account_id: str, lock: str = "", settings: dict[str, Any] | None = None) -> int:
    """The balance (its version remembered for the write to come); `lock` is '', 'wait' (FOR UPDATE)
    or 'nowait' (FOR UPDATE NOWAIT).

    `settings` (`Database.settings_params`), with `lock="wait"`: the transaction's settings, set by the same
    statement before it waits for the row (`sql.LOCK_BALANCE_CONFIGURED`): one round trip, not two. With a
    `version` among them, only while the lab's settings are that version (no row, `UnknownAccount`, else)."""
    if settings is not None and lock == "wait":
        statement = LOCKS_CONFIGURED["deadlock_timeout" in settings, "version" in settings]
        row = conn.execute(statement, {"id": account_id, **settings}).fetchone()
    else:
        statement = {"": sql.READ_BALANCE, "wait": sql.LOCK_BALANCE, "nowait": sql.LOCK_BALANCE_NOWAIT}[lock]
        row = conn.execute(statement, (account_id,)).fetchone()
    if row is None:
        raise UnknownAccount(account_id)
    SEEN.remember(account_id, *row)
    return row[0]


def write_balance(conn: Connection, account_id: str, balance: int, counts: sql.Counts = NOTHING_COUNTED) -> int:
    """Write `balance`, computed from what this thread last read of the account; name what it erased, if anything.

    Every balance write goes through here or `add_to_balance`, so whatever a
    write must carry (its counts, a version that every write advances, its
    line in the writes log) is added in one place. When the version it wrote
    over is newer than the one it read (`SEEN`), it has erased the writes in
    between, and `record_erasure` names them, fleet-wide.
    """
    read = SEEN.take(account_id)
    if read is None:  # a blind write: computed from nothing, it overwrites what is there now
        read_balance(conn, account_id)
        read = SEEN.take(account_id)
        assert read is not None, "read_balance records what it read"
    read_from, parent, read_at = read
    writer = who()
    caller = writer._asdict()
    params = {"id": account_id, "balance": balance, "parent": parent, "delta": balance - read_from, "read_at": read_at}
    written, version, at = one(conn.execute(sql.WRITE_BALANCE, {**params, **caller, **counts.params()}))
    if version - 1 != parent:  # only a race pays for the walk
        write = Write(account_id, version, parent, balance - read_from, balance, *writer, read_at, at)
        record_erasure(conn, write, version - 1)
    if version % PRUNE_EVERY == 0:
        conn.execute(sql.PRUNE_WRITES, (account_id, version - HISTORY))
    return written


def add_to_balance(
    conn: Connection,
    account_id: str,
    delta: int,
    counts: sql.Counts,
    config: Config,
    floor: int | None = None,
    settings_version: int | None = None,
) -> tuple[int | None, int, dict[str, Any] | None]:
    """`sql.ADD_TO_BALANCE`, waiting for the row at most `config`'s lock timeout: (the new balance, or None when
    it would have gone below `floor` or the settings are no longer `settings_version`, and nothing changed; the
    settings' version; their body when it is not `settings_version`)."""
    params = {"id": account_id, "delta": delta, "floor": -(2**62) if floor is None else floor, **counts.params()}
    params |= {"settings_version": settings_version, "lock_timeout": lock_timeout_setting(config.lock_timeout_ms)}
    row = conn.execute(sql.ADD_TO_BALANCE, {**params, **who()._asdict()}).fetchone()
    if row is None:
        raise StoreUnavailable("the database has no bankapp settings", store="postgres")
    return row[0], row[1], row[2]


def withdraw_if_pair_covers(
    conn: Connection, account_id: str, pair: tuple[str, str], amount: int, counts: sql.Counts
) -> tuple[int, int] | None:
    """(the new balance, the pair's sum the check read), or None when the sum did not cover it."""
    params = {"id": account_id, "pair": list(pair), "amount": amount, **counts.params()}
    row = conn.execute(sql.WITHDRAW_IF_PAIR_COVERS, {**params, **who()._asdict()}).fetchone()
    return None if row is None else (row[0], row[1])


def count_only(conn: Connection, account_id: str, counts: sql.Counts) -> None:
    conn.execute(sql.COUNT_ONLY, {"id": account_id, **counts.params()})


def record_erasure(conn: Connection, write: Write, head: int) -> None:
    """`write` overwrote version `head`, not the one it read: walk the writes log, record what it erased.

    Runs on the writer's connection, inside its transaction if it has one:
    an erasure whose write rolls back is gone with it.
    """
    fetched: dict[int, Write] = {}
    lowest = head + 1  # every version from here up to `head` has been fetched

    def lookup(version: int) -> Write | None:
        nonlocal lowest
        if version < lowest:
            rows = conn.execute(sql.WRITES_BETWEEN, (write.account, version - WALK_FETCH, lowest - 1)).fetchall()
            fetched.update((row[1], Write(*row)) for row in rows)
            lowest = version - WALK_FETCH + 1
        return fetched.get(version)

    event = erasure(write, head, None, lookup)
    params = {"erased": len(event.erased), "revived": len(event.revived), "cents": event.cents, "keep": RECENT}
    conn.execute(sql.RECORD_RACE, {**params, "body": Jsonb(event.to_json()), "incomplete": int(not event.complete)})


class StockTable:
    """The shop's `Inventory` in `bankapp_stock`: single reads and writes, plus the guarded reservation."""

    def __init__(self, db: Database):
        self.db = db
        self.initial = dict(CATALOGUE)

    def exists(self, sku: str) -> bool:
        return sku in self.initial

    def read(self, sku: str) -> int:
        with self.db.connection() as conn:
            return one(conn.execute(sql.READ_STOCK, (sku,)))[0]

    def write(self, sku: str, units: int) -> None:
        with self.db.connection() as conn:
            conn.execute(sql.WRITE_STOCK, (units, sku))

    def reserve(self, sku: str, quantity: int) -> int | None:
        """Take `quantity` if there is that much, in one statement: the units left, or None (nothing taken)."""
        with self.db.connection() as conn:
            row = conn.execute(sql.RESERVE_STOCK, {"sku": sku, "quantity": quantity}).fetchone()
        return None if row is None else row[0]

    def count_sold(self, sku: str, quantity: int) -> None:
        with self.db.connection() as conn:
            conn.execute(sql.COUNT_SOLD, (quantity, sku))

    def rows(self) -> list[tuple[str, int, int, int]]:
        """(sku, units, initial, sold) for every SKU."""
        with self.db.connection() as conn:
            return conn.execute(sql.STOCK).fetchall()

    def snapshot(self) -> dict[str, int]:
        return {sku: units for sku, units, _, _ in self.rows()}

    def reset(self) -> None:
        with self.db.connection() as conn:
            conn.execute(sql.RESET_STOCK)


class DatabaseLedger:
    """`LedgerStats` for a fleet: what the bank acknowledged, counted in the accounts' own rows."""

    def __init__(self, db: Database, counters: Counters, initial_balance: int):
        self.db = db
        self.counters = counters
        self.initial_balance = initial_balance

    def reset(self) -> None:
        pass  # the counts are columns of the accounts' rows, which `PostgresStore.reset` restores

    def _count(self, account_id: str, counts: sql.Counts) -> None:
        with self.db.connection() as conn:
            count_only(conn, account_id, counts)

    def deposited(self, account_id: str, amount: int) -> None:
        self._count(account_id, sql.Counts.deposit(amount))

    def undeposited(self, account_id: str, amount: int) -> None:
        self._count(account_id, sql.Counts.deposit(amount).negated())

    def withdrew(self, account_id: str, amount: int) -> None:
        self._count(account_id, sql.Counts.withdrawal(amount))

    def moved(self, account_id: str, delta: int) -> None:
        self._count(account_id, sql.Counts.moved(delta))

    def refused(self, reason: str) -> None:
        self.counters.add(f"refused.{reason}")

    def rows(self) -> list[tuple[Any, ...]]:
        with self.db.connection() as conn:
            return conn.execute(sql.LEDGER).fetchall()

    @staticmethod
    def report(rows: list[tuple[Any, ...]], counters: dict[str, int]) -> dict[str, Any]:
        """`LedgerStats.report` from the accounts' rows and the counters, read in one snapshot."""
        per_account = {}
        for account_id, balance, opening, deposits, deposit_amount, _, withdrawal_amount, net in rows:
            change = balance - opening
            per_account[account_id] = {
                "balance": balance,
                "acknowledged": deposits,
                "acknowledged_amount": deposit_amount,
                "withdrawn_amount": withdrawal_amount,
                "balance_change": change,
                "lost_updates": net - change,
            }
        prefix = "refused."
        refused = {name.removeprefix(prefix): n for name, n in counters.items() if name.startswith(prefix) and n}
        return {
            "acknowledged": sum(row[3] for row in rows),
            "acknowledged_amount": sum(row[4] for row in rows),
            "withdrawals": sum(row[5] for row in rows),
            "withdrawn_amount": sum(row[6] for row in rows),
            "balance_change": sum(row["balance_change"] for row in per_account.values()),
            "lost_updates": sum(row["lost_updates"] for row in per_account.values()),
            "accounts_with_lost_updates": sum(1 for row in per_account.values() if row["lost_updates"]),
            "rejected": refused,
            "lock_timeouts": refused.get("lock_timeout", 0),
            "self_deadlocks": refused.get("self_deadlock", 0),
            "serialization_retries": counters.get("deposits.serialization_retries", 0),
            "serialization_failures": {  # deposits refused after every retry, and the retries they spent
                "refused": refused.get("serialization_failure", 0),
                "retries": counters.get("deposits.serialization_refused_retries", 0),
            },
            "per_account": per_account,
        }
