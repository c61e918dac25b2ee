"""The shop's statements: the stock, its orders, and the advisory locks that admit checkouts across the
fleet (see the package's docstring).
"""

from __future__ import annotations

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
