"""The postgres store: the database's own tools, shared by every worker and machine.

With the memory store the bank lives in one process, so one worker is all
it allows. Here PostgreSQL holds the shared state (balances, stock,
settings, counters), each gunicorn worker opens its own connection pool
after the fork, and the lessons repeat one level up: a Python lock stops
protecting anything once there are two processes, and the database's row
locks, advisory locks, atomic updates, serializable transactions and
deadlock detector take over.

Modules: `sql` (every statement, with the anomaly it allows or prevents,
and nothing else), `schema` (tables, version, seed, the check at start),
`database` (the pool and the connection a thread holds), `settings`,
`store` (balances, stock, the ledger, and the write path: what each thread
read, each write's log line, the erasures it names), `counters`,
`bank` (the deposit guards), `transfers`, `locks` (`/debug/locks` from
`pg_locks`), `shop` (fleet-wide admission) and `lab`, which wires them.
psycopg is imported only when the postgres store is used.
"""

from .lab import PostgresLab
from .schema import TeamExists, prepare

__all__ = ["PostgresLab", "TeamExists", "prepare"]
