"""Every statement the postgres store runs, each with the anomaly it allows or prevents.

SQL is part of the lesson, so it is all here, in the open: no ORM, every
parameter bound (`%s`), every transaction spelled out by the caller with
`with conn.transaction():`. Read it next to Hermitage's table of anomalies:

- a read in one statement and a write computed from it in another is a
  read-modify-write across two statements: between them another
  transaction can commit, and the write erases it (P4, the lost update),
  even inside a READ COMMITTED transaction;
- `SELECT ... FOR UPDATE` locks the row until the transaction ends: a
  second reader waits, and reads the committed result;
- `UPDATE ... SET balance = balance + %s` reads and writes in one
  statement, under the row lock the UPDATE takes anyway: nothing can get in
  between, and the application holds no lock at all;
- under SERIALIZABLE, PostgreSQL aborts one of two transactions whose
  reads and writes could not have happened one after the other (`40001`).

Counts ride along with the write they count (`Counts`): the balance and
its record change in one statement, so no snapshot ever sees one without
the other. Counters are relative (`n = n + 1`), so they are exact even
where the balance write they ride with is a lost update.

Every balance write carries its counts, a version that every write
advances, and its line in the writes log, in the statement itself
(`WRITE_BALANCE`, `ADD_TO_BALANCE`). This module holds statements only,
and no state: which version a write was computed from, and what an erasure
names, is the store's (`store.write_balance`, `store.record_erasure`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# --- settings ------------------------------------------------------------------

READ_SETTINGS = "SELECT version, CASE WHEN version = %s THEN NULL ELSE body END FROM bankapp_settings"
"""The settings' version, and their body only when it is not the version this worker already has.

Read at the start of every request: a PATCH committed before the request
started is in force, on every worker, with no push and no delay. One
round trip; the body (and its validation) only after a change."""

LOCK_SETTINGS = "SELECT version, body FROM bankapp_settings FOR UPDATE"
"""Two PATCHes at once merge one after the other, neither erasing the other (no lost update of settings)."""

WRITE_SETTINGS = """
UPDATE bankapp_settings SET version = version + 1, body = %s, changed_at = now(), changed_by = %s
RETURNING version"""
"""A new version: every worker sees it at its next request."""

# --- balances --------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """What a balance write also counts, in the same statement: the ledger of one account."""

    deposits: int = 0
    deposit_amount: int = 0
    withdrawals: int = 0
    withdrawal_amount: int = 0
    net: int = 0  # every acknowledged change, transfers' legs included

    @classmethod
    def deposit(cls, amount: int) -> Counts:
        return cls(deposits=1, deposit_amount=amount, net=amount)

    @classmethod
    def withdrawal(cls, amount: int) -> Counts:
        return cls(withdrawals=1, withdrawal_amount=amount, net=-amount)

    @classmethod
    def moved(cls, delta: int) -> Counts:
        return cls(net=delta)

    def negated(self) -> Counts:
        return Counts(**{name: -value for name, value in asdict(self).items()})

    def params(self) -> dict[str, int]:
        """The statement's parameters (what `asdict` gives, without its deep copy: this runs on every write)."""
        return {
            "deposits": self.deposits,
            "deposit_amount": self.deposit_amount,
            "withdrawals": self.withdrawals,
            "withdrawal_amount": self.withdrawal_amount,
            "net": self.net,
        }


_COUNTED = """deposits = deposits + %(deposits)s, deposit_amount = deposit_amount + %(deposit_amount)s,
    withdrawals = withdrawals + %(withdrawals)s, withdrawal_amount = withdrawal_amount + %(withdrawal_amount)s,
    net = net + %(net)s"""

_NOW = "extract(epoch FROM clock_timestamp())::float8"
_VERSIONED = f"balance, version, {_NOW}"
_LOGGED = """INSERT INTO bankapp_writes (account, version, parent, delta, balance, request_id, operation, thread, pid,
                                read_at)"""

READ_BALANCE = f"SELECT {_VERSIONED} FROM bankapp_accounts WHERE id = %s"
"""A plain read: no lock. A write computed from it later can erase what committed in between (P4)."""

LOCK_BALANCE = f"SELECT {_VERSIONED} FROM bankapp_accounts WHERE id = %s FOR UPDATE"
"""Read and lock the row until the transaction ends; waits at most `lock_timeout` (then `55P03`).

A second `FOR UPDATE` of the same row by the same transaction is granted at
once: a row lock belongs to the transaction, not to a thread."""

_SET_LOCK_TIMEOUT = "set_config('lock_timeout', %(lock_timeout)s, true)"
_SET_NAME = "set_config('application_name', %(application_name)s, false)"
_SET_DEADLOCK_TIMEOUT = "set_config('deadlock_timeout', %(deadlock_timeout)s, true)"
_LOCK_CONFIGURED = """
WITH settings AS MATERIALIZED (SELECT {settings})
SELECT {versioned} FROM bankapp_accounts, settings WHERE id = %(id)s FOR UPDATE OF bankapp_accounts"""

LOCK_BALANCE_CONFIGURED = _LOCK_CONFIGURED.format(settings=f"{_SET_LOCK_TIMEOUT}, {_SET_NAME}", versioned=_VERSIONED)
"""`LOCK_BALANCE` as the first statement of a transaction, with the transaction's settings (`TRANSACTION_SETTINGS`)
in the same round trip.

The row is locked above the join (`FOR UPDATE OF`), after both sides gave
their row: the settings are set before the lock is waited for, whatever
order the planner scans them in, so the wait is bounded by this
`lock_timeout`."""

LOCK_BALANCE_CONFIGURED_AND_DEADLOCK_TIMEOUT = _LOCK_CONFIGURED.format(
    settings=f"{_SET_LOCK_TIMEOUT}, {_SET_NAME}, {_SET_DEADLOCK_TIMEOUT}", versioned=_VERSIONED
)
"""The same, and `deadlock_timeout` (where the role may set it)."""

LOCK_BALANCE_NOWAIT = f"SELECT {_VERSIONED} FROM bankapp_accounts WHERE id = %s FOR UPDATE NOWAIT"
"""Lock the row or fail at once with `55P03`: the try-lock of policy `backoff`."""

WRITE_BALANCE = f"""
WITH written AS (
    UPDATE bankapp_accounts SET balance = %(balance)s, version = version + 1, {_COUNTED}
    WHERE id = %(id)s RETURNING balance, version
), logged AS (
    {_LOGGED}
    SELECT %(id)s, version, %(parent)s, %(delta)s, balance, %(request_id)s, %(operation)s, %(thread)s, %(pid)s,
           %(read_at)s
    FROM written RETURNING at
)
SELECT balance, version, at FROM written, logged"""
"""Write an absolute balance the application computed: right only if nothing changed it since the read.

The version it writes is the next one whatever it read: when the version
it overwrote (the new one minus 1) is not the one it read, the writes in
between are erased. Its line in the writes log rides in the same statement."""

ADD_TO_BALANCE = f"""
WITH written AS (
    UPDATE bankapp_accounts SET balance = balance + %(delta)s, version = version + 1, {_COUNTED}
    WHERE id = %(id)s AND balance + %(delta)s >= %(floor)s RETURNING balance, version
), logged AS (
    {_LOGGED}
    SELECT %(id)s, version, version - 1, %(delta)s, balance, %(request_id)s, %(operation)s, %(thread)s, %(pid)s,
           {_NOW}
    FROM written
)
SELECT balance FROM written"""
"""Read, add and write in one statement, under the row lock the UPDATE takes: no lost update.

It reads the version it overwrites, so it never erases anything. With a
`floor` (0 for a withdrawal) it is also a guarded update: no row comes back
when the balance would go below it, and nothing changed."""

WRITES_BETWEEN = """
SELECT account, version, parent, delta, balance, request_id, operation, thread, pid, read_at, at
FROM bankapp_writes WHERE account = %s AND version > %s AND version <= %s"""
"""The writes log of one account over a range of versions: what an erasure's walk looks up."""

PRUNE_WRITES = "DELETE FROM bankapp_writes WHERE account = %s AND version <= %s"

RECORD_RACE = """
WITH race AS (
    INSERT INTO bankapp_races (body) VALUES (%(body)s) RETURNING id
), counted AS (
    INSERT INTO bankapp_counters (name, n)
    VALUES ('races.erasures', 1), ('races.writes_erased', %(erased)s), ('races.writes_revived', %(revived)s),
           ('races.lost_updates', %(cents)s), ('races.incomplete', %(incomplete)s)
    ON CONFLICT (name) DO UPDATE SET n = bankapp_counters.n + EXCLUDED.n
), pruned AS (
    DELETE FROM bankapp_races WHERE id <= (SELECT id FROM race) - %(keep)s
)
SELECT id FROM race"""
"""An erasure, its totals and the pruning of old ones in one statement: the totals stay exact when old
erasures go, and no snapshot sees an erasure without its count."""

RECENT_RACES = "SELECT id, body FROM bankapp_races ORDER BY id DESC LIMIT %s"

RESET_RACES = ("DELETE FROM bankapp_writes", "DELETE FROM bankapp_races")

COUNT_ONLY = f"UPDATE bankapp_accounts SET {_COUNTED} WHERE id = %(id)s"
"""Count without writing the balance: the in-process guards' path writes, then counts, in one transaction."""

BALANCES = "SELECT id, balance FROM bankapp_accounts ORDER BY id"

LEDGER = """
SELECT id, balance, opening, deposits, deposit_amount, withdrawals, withdrawal_amount, net
FROM bankapp_accounts ORDER BY id"""

AUDIT = """
SELECT coalesce(sum(balance), 0)::bigint, coalesce(sum(opening + deposit_amount - withdrawal_amount), 0)::bigint,
       coalesce(array_agg(id ORDER BY id) FILTER (WHERE balance < 0), '{}'), count(*)
FROM bankapp_accounts"""
"""The bank audit in one statement, so in one snapshot: every balance as of one instant.

No lock is taken: MVCC shows each committed transaction wholly or not at
all. A wrong total means money was in flight between two commits
(`release-first`) or created or destroyed (`unsafe`)."""

RESET_ACCOUNTS = """
UPDATE bankapp_accounts SET balance = opening, version = version + 1, deposits = 0, deposit_amount = 0,
    withdrawals = 0, withdrawal_amount = 0, net = 0"""

ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock(%s, %s)"
"""An advisory lock held until the transaction ends; waits at most `lock_timeout`.

It locks nothing by itself: it excludes only those who ask for the same
key. The same session may take it again at once (it is re-entrant)."""


WITHDRAW_IF_PAIR_COVERS = f"""
WITH written AS (
    UPDATE bankapp_accounts SET balance = balance - %(amount)s, version = version + 1, {_COUNTED}
    WHERE id = %(id)s AND (SELECT sum(balance) FROM bankapp_accounts WHERE id = ANY(%(pair)s)) >= %(amount)s
    RETURNING balance, version
), logged AS (
    {_LOGGED}
    SELECT %(id)s, version, version - 1, -%(amount)s, balance, %(request_id)s, %(operation)s, %(thread)s, %(pid)s,
           {_NOW}
    FROM written
)
SELECT balance, (SELECT sum(balance) FROM bankapp_accounts WHERE id = ANY(%(pair)s)) FROM written"""
"""A customer's withdrawal in one statement: debit one account if the pair's sum covers the amount.

It allows write skew under read committed: the sum is read from the
statement's snapshot and only the debited row is locked, so two of them on
the customer's two accounts can both see the old sum and both pass. One
statement is atomic for the row it writes, not for a rule over two rows."""


# --- transactions ------------------------------------------------------------------

SERIALIZABLE = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"
"""The first statement of a serializable transaction: PostgreSQL aborts (`40001`) rather than let it see a
state no serial order of the transactions could have produced."""

SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
"""Every statement of the transaction reads the same snapshot: `/stats` adds up counters of one instant."""

TRANSACTION_SETTINGS = "SELECT set_config('lock_timeout', %s, true), set_config('application_name', %s, false)"
"""For this transaction: how long a lock wait may last. And which worker and thread runs it, what
`/debug/locks` and a deadlock's record show next to each backend: set for the session, so that it still
names the last transaction's thread just after that transaction ended."""

TRANSACTION_SETTINGS_AND_DEADLOCK_TIMEOUT = (
    "SELECT set_config('lock_timeout', %s, true), set_config('application_name', %s, false), "
    "set_config('deadlock_timeout', %s, true)"
)
"""The same, and how long a lock wait lasts before PostgreSQL looks for a cycle (needs a role that may set it)."""

DEADLOCK_TIMEOUT_ALLOWED = "SELECT set_config('deadlock_timeout', current_setting('deadlock_timeout'), true)"

SERVER_DEADLOCK_TIMEOUT = "SELECT current_setting('deadlock_timeout')"

# --- advisory locks (checkout) ---------------------------------------------------------

TRY_ADVISORY_LOCK = "SELECT pg_try_advisory_lock(%s, %s)"
"""A session-level advisory lock if it is free, else false at once: held until unlocked or the session ends."""

WAIT_ADVISORY_LOCK = "SELECT set_config('lock_timeout', %s, true), pg_advisory_lock(%s, %s)"
"""Queue for a session-level advisory lock, at most `lock_timeout` (one statement: the setting lasts as long).

PostgreSQL's lock queue is fair: waiters are served in the order they came."""

ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(%s, %s)"

TRY_ADVISORY_SLOT = "SELECT slot FROM generate_series(0, %s - 1) AS slot WHERE pg_try_advisory_lock(%s, slot) LIMIT 1"
"""A semaphore of N made of N advisory locks: take the first free slot, or none (no row).

Each slot is an exclusive lock, so at most N sessions hold one, whichever
process or machine they run on. LIMIT 1 stops the scan at the first slot
taken, so one session never holds two."""

ADVISORY_HELD = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid = %s AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
"""How many sessions hold a key's locks right now: the fleet-wide semaphore's value is N minus this."""

# --- stock --------------------------------------------------------------------------

READ_STOCK = "SELECT units FROM bankapp_stock WHERE sku = %s"
"""A plain read of the stock: checked here, written later, it lets two checkouts sell the same units."""

WRITE_STOCK = "UPDATE bankapp_stock SET units = %s WHERE sku = %s"
"""An absolute write of the stock computed from an earlier read: oversells under concurrency."""

COUNT_SOLD = "UPDATE bankapp_stock SET sold = sold + %s WHERE sku = %s"

RESERVE_STOCK = """
UPDATE bankapp_stock SET units = units - %(quantity)s, sold = sold + %(quantity)s
WHERE sku = %(sku)s AND units >= %(quantity)s RETURNING units"""
"""Check and take in one guarded statement, under the row lock: never oversells."""

STOCK = "SELECT sku, units, initial, sold FROM bankapp_stock ORDER BY sku"

RESET_STOCK = "UPDATE bankapp_stock SET units = initial, sold = 0"

NEXT_ORDER_ID = "SELECT nextval('bankapp_order_ids')"
"""Order ids from one sequence: unique across the fleet, never handed out twice."""

# --- counters and gauges -------------------------------------------------------------------

ADD_COUNTER = """
INSERT INTO bankapp_counters (name, n) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET n = bankapp_counters.n + EXCLUDED.n"""
"""n = n + 1 under the row lock of the counter: exact however many workers count at once."""

COUNTERS = "SELECT name, n FROM bankapp_counters"

RAISE_GAUGE = """
UPDATE bankapp_gauges SET now = now + 1, peak = greatest(peak, now + 1) WHERE name = %s AND now < %s
RETURNING now"""
"""One more (in flight, waiting, at the gateway), unless `limit` are already there: then no row."""

LOWER_GAUGE = "UPDATE bankapp_gauges SET now = now - 1 WHERE name = %s RETURNING now"

ADMIT = """
WITH flight AS (
    UPDATE bankapp_gauges SET now = now + 1, peak = greatest(peak, now + 1) WHERE name = 'checkout.in_flight'
    RETURNING now
), queue AS (
    UPDATE bankapp_gauges SET now = now - %s WHERE name = 'checkout.waiting'
), counted AS (
    INSERT INTO bankapp_counters (name, n) VALUES ('checkout.admitted', 1)
    ON CONFLICT (name) DO UPDATE SET n = bankapp_counters.n + 1
)
SELECT now FROM flight"""
"""Admitted: into flight (and, after a wait, out of the queue) in one statement, so no snapshot counts a
checkout twice or not at all."""

REJECT = """
WITH counted AS (
    INSERT INTO bankapp_counters (name, n) VALUES ('checkout.rejected', 1), (%s, 1)
    ON CONFLICT (name) DO UPDATE SET n = bankapp_counters.n + 1
)
SELECT name, now FROM bankapp_gauges WHERE name IN ('checkout.in_flight', 'checkout.waiting')"""

GAUGES = "SELECT name, now, peak FROM bankapp_gauges"

RESET_COUNTERS = "UPDATE bankapp_counters SET n = 0"

RESET_GAUGES = "UPDATE bankapp_gauges SET peak = now"
"""Peaks restart from what is true now; `now` itself is no total: checkouts under way still leave later."""

COUNT_RESET = "UPDATE bankapp_resets SET resets = resets + 1, since = now()"
"""Resets are counted fleet-wide and never zeroed, so /metrics can tell a reset from a counter going down."""

RESETS = "SELECT resets, extract(epoch FROM since)::float8 FROM bankapp_resets"

# --- workers ----------------------------------------------------------------------------

REGISTER_WORKER = """
INSERT INTO bankapp_workers (host, pid, started_at, last_seen, served) VALUES (%s, %s, now(), now(), 0)
ON CONFLICT (host, pid) DO UPDATE SET started_at = now(), last_seen = now(), served = 0"""

WORKER_SERVED = """
INSERT INTO bankapp_workers (host, pid, started_at, last_seen, served) VALUES (%s, %s, now(), now(), %s)
ON CONFLICT (host, pid) DO UPDATE SET served = bankapp_workers.served + EXCLUDED.served, last_seen = now()"""

WORKERS = """
SELECT host, pid, served, started_at, last_seen FROM bankapp_workers WHERE served > 0 ORDER BY host, pid"""

RESET_WORKERS = "UPDATE bankapp_workers SET served = 0"

# --- deadlocks -------------------------------------------------------------------------------

RECORD_DEADLOCK = """
INSERT INTO bankapp_deadlocks (detected_by, accounts, detail, cycle, context) VALUES (%s, %s, %s, %s, %s)
RETURNING id, detected_at"""

PRUNE_DEADLOCKS = "DELETE FROM bankapp_deadlocks WHERE id <= %s - %s"

RECENT_DEADLOCKS = """
SELECT id, detected_at, detected_by, accounts, detail, cycle, context
FROM bankapp_deadlocks ORDER BY id DESC LIMIT %s"""

RESET_DEADLOCKS = "DELETE FROM bankapp_deadlocks"

BACKENDS = """
SELECT pid, application_name FROM pg_stat_activity WHERE pid = ANY(%s)"""
"""Who the backends of a deadlock serve: each transaction names its worker and thread."""

BLOCKING = """
SELECT a.pid, a.application_name, a.state, a.wait_event_type, a.wait_event,
       round(extract(epoch FROM now() - a.state_change) * 1000)::bigint, left(a.query, 160), pg_blocking_pids(a.pid)
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
  AND (a.state <> 'idle' OR a.wait_event_type = 'Lock')"""
"""Every busy backend of this database, with the pids that block it (`pg_blocking_pids`): the wait-for graph."""

LOCKS = """
SELECT l.pid, l.locktype, l.mode, l.granted, l.relation::regclass::text, l.page, l.tuple,
       l.transactionid::text, l.classid, l.objid, l.objsubid
FROM pg_locks l
WHERE l.pid = ANY(%s) AND l.locktype IN ('tuple', 'transactionid', 'advisory')
ORDER BY l.pid, l.granted DESC"""
"""The locks that matter for who waits for whom: row locks show as a tuple lock and a wait for the holder's
transaction id; advisory locks by their two keys."""
