"""The bank's statements: balances with their counts, versions and writes log, erasures, the audit, a
customer's pair, and the transaction settings a guard runs under (see the package's docstring).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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

_LOCK_CONFIGURED_IF_SETTINGS = """
WITH settings AS MATERIALIZED (SELECT {settings}, (SELECT version FROM bankapp_settings) AS settings_version)
SELECT {versioned} FROM bankapp_accounts, settings WHERE id = %(id)s AND settings_version = %(version)s
FOR UPDATE OF bankapp_accounts"""

LOCK_BALANCE_CONFIGURED_IF_SETTINGS = _LOCK_CONFIGURED_IF_SETTINGS.format(
    settings=f"{_SET_LOCK_TIMEOUT}, {_SET_NAME}", versioned=_VERSIONED
)
"""`LOCK_BALANCE_CONFIGURED` only while the lab's settings are still `version`: the first read of a deposit
under `row-lock` checks them in its own round trip (see `bank.SettingsCheck`).

When they moved, the join gives no row, so no row is locked and none is
waited for: the deposit runs again under the new settings, whose
`lock_timeout` then bounds the wait."""

LOCK_BALANCE_CONFIGURED_AND_DEADLOCK_TIMEOUT_IF_SETTINGS = _LOCK_CONFIGURED_IF_SETTINGS.format(
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
WITH settings AS MATERIALIZED (
    SELECT version, CASE WHEN version = %(settings_version)s THEN NULL ELSE body END AS body,
           set_config('lock_timeout', %(lock_timeout)s, true) AS lock_timeout
    FROM bankapp_settings
), written AS (
    UPDATE bankapp_accounts SET balance = balance + %(delta)s, version = version + 1, {_COUNTED}
    WHERE id = %(id)s AND balance + %(delta)s >= %(floor)s
      AND (SELECT version FROM settings) = coalesce(%(settings_version)s, (SELECT version FROM settings))
    RETURNING balance, version
), logged AS (
    {_LOGGED}
    SELECT %(id)s, version, version - 1, %(delta)s, balance, %(request_id)s, %(operation)s, %(thread)s, %(pid)s,
           {_NOW}
    FROM written
)
SELECT (SELECT balance FROM written), version, body FROM settings"""
"""Read, add and write in one statement, under the row lock the UPDATE takes: no lost update.

It reads the version it overwrites, so it never erases anything. With a
`floor` (0 for a withdrawal) it is also a guarded update: no row comes back
when the balance would go below it, and nothing changed.

Its wait for the row is bounded by `lock_timeout` (`set_config(..., true)`:
for this statement's own transaction), set by the settings' CTE before the
row is reached. With a `settings_version` it changes the row only while the
lab's settings are still that version (NULL: whatever they are), and says
which version it found, with their body when it is not that one: the
settings' read rides with the work, one round trip. When they moved
(another worker answered a PATCH) nothing is written, and the body comes
back (`DatabaseSettings.adopt`) for the work to run again under them. The
statement's snapshot is taken after its request started, so a PATCH
answered before that is seen, as by `READ_SETTINGS`."""

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

RESET_LOCKS = (
    "SELECT pg_advisory_xact_lock(%s, 0)",
    "SELECT id FROM bankapp_accounts ORDER BY id FOR UPDATE",
    "SELECT sku FROM bankapp_stock ORDER BY sku FOR UPDATE",
    "SELECT name FROM bankapp_counters ORDER BY name FOR UPDATE",
    "SELECT name FROM bankapp_gauges ORDER BY name FOR UPDATE",
    "SELECT host, pid FROM bankapp_workers ORDER BY host, pid FOR UPDATE",
)
"""A reset's locks, taken first and in one order: one reset at a time in the fleet (the advisory lock), then
every row it will write, accounts first, each table in key order, as an `ordered` transfer takes its two
accounts and as counters are counted (several in one statement in name order). A request that holds a row
the reset needs finishes first; one that comes after waits for the reset. Locked in the order the UPDATEs
happened to scan, a reset and a transfer each held a row the other wanted: `40P01`, a 500."""

RESET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, true)"

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
