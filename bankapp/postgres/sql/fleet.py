"""What the fleet shares: its settings, counters and gauges (from advisory locks that die with their
holders), its workers, and the deadlocks PostgreSQL found (see the package's docstring).
"""

from __future__ import annotations

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


# --- counters and gauges -------------------------------------------------------------------

ADD_COUNTER = """
INSERT INTO bankapp_counters (name, n) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET n = bankapp_counters.n + EXCLUDED.n"""
"""n = n + 1 under the row lock of the counter: exact however many workers count at once."""

COUNTERS = "SELECT name, n FROM bankapp_counters"

HOLD_SHARED = "SELECT pg_advisory_lock_shared(%s, %s)"
"""One more holder of a shared advisory lock: a checkout in flight, or one at the gateway.

The lock belongs to the session that takes it: however the checkout ends (its
unlock, a connection lost mid-statement, the worker killed with `kill -9`),
it is gone with the session, so a count of holders never stays up. A counter
in a row (`now = now + 1` ... `now - 1`) stays up for good when the `- 1`
cannot be written: the database went away between the two."""

UNHOLD_SHARED = "SELECT pg_advisory_unlock_shared(%s, %s)"

UNLOCK_ALL = "SELECT pg_advisory_unlock_all()"
"""Every session-level advisory lock this session holds, given back: the end of a checkout, whatever happened."""

HOLDERS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
"""How many sessions hold one advisory lock (shared) right now."""

HOLDERS_AND_PEAK = """
UPDATE bankapp_gauges SET peak = greatest(peak, held.n)
FROM (
    SELECT count(*) AS n FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
) AS held
WHERE name = %s
RETURNING held.n"""
"""How many hold one advisory lock now (this session included, just after taking it), and the gauge's peak
moved up to that, in one statement."""

RAISE_PEAK = "UPDATE bankapp_gauges SET peak = greatest(peak, %s) WHERE name = %s"

COUNT_OUTCOME = """
INSERT INTO bankapp_counters (name, n) VALUES ('checkout.admitted', 1), (%s, 1)
ON CONFLICT (name) DO UPDATE SET n = bankapp_counters.n + 1"""
"""An admitted checkout is counted with its outcome, in one statement: `admitted` never exceeds
`completed + out_of_stock + failed` (plus those in flight), even when the database goes away mid-checkout."""

REJECT = """
INSERT INTO bankapp_counters (name, n) VALUES ('checkout.rejected', 1), (%s, 1)
ON CONFLICT (name) DO UPDATE SET n = bankapp_counters.n + 1"""

LIVE_GAUGES = """
WITH held AS (
    SELECT CASE WHEN classid = %(flight)s AND objid = 0 THEN 'checkout.in_flight'
                WHEN classid = %(flight)s AND objid = 1 THEN 'checkout.gateway'
                WHEN classid = %(flight)s AND objid = 2 THEN 'transfers.in_flight'
                ELSE 'checkout.waiting' END AS name, count(*) AS n
    FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND classid IN (%(flight)s, %(queue)s) AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    GROUP BY 1
)
SELECT g.name, coalesce(held.n, 0), greatest(g.peak, coalesce(held.n, 0))
FROM bankapp_gauges g LEFT JOIN held USING (name)"""
"""Each gauge (now, peak), counted from the advisory locks their sessions hold (see `HOLD_SHARED`), so what
is in flight, waiting or at the gateway is what is true, whatever was lost."""

RESET_COUNTERS = "UPDATE bankapp_counters SET n = 0"

RESET_GAUGES = "UPDATE bankapp_gauges SET peak = 0"
"""Peaks restart; what is in flight now is counted from the locks held (`LIVE_GAUGES` reads each peak as at
least that), and those under way still leave later."""

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

LOCK_OWNERS = r"""
SELECT l.pid, n.nspname, CASE WHEN l.locktype = 'advisory' AND l.objsubid = 2 THEN l.classid::bigint / %s END
FROM pg_locks l
LEFT JOIN pg_class c ON c.oid = l.relation AND c.relname LIKE 'bankapp\_%%'
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = ANY(%s) AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
"""Whose each backend is (rooms): the schemas of the bankapp tables it locks, and the team numbers of its
advisory keys (a team owns 16 first keys: `database.KEYS_PER_TEAM`)."""

ROOM_STATE = """
CREATE TABLE IF NOT EXISTS bankapp_room (
    one boolean PRIMARY KEY DEFAULT true CHECK (one), frozen boolean NOT NULL DEFAULT false)"""
"""The room's own state (rooms), beside the default team's tables: whether the instructor froze it."""

ROOM_STATE_MADE = """
SELECT to_regclass('bankapp_room') IS NOT NULL"""
"""Whether the room's state was ever written (no table: the room was never frozen)."""

ROOM_FROZEN = """
SELECT coalesce((SELECT frozen FROM bankapp_room), false)"""
"""Whether the room is frozen; no row reads as not."""

ROOM_FREEZE = """
INSERT INTO bankapp_room (one, frozen) VALUES (true, %s) ON CONFLICT (one) DO UPDATE SET frozen = EXCLUDED.frozen"""
"""Freeze or thaw the whole room, for every worker at once (each reads it within a second)."""
