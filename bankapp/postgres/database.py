"""One connection pool per worker process, and the one connection a thread uses at a time.

psycopg's `ConnectionPool` keeps connections open between requests. A pool
holds sockets and threads, and neither survives a `fork()`, so each
gunicorn worker opens its own, after the fork: on first use, or when
gunicorn calls `post_worker_init` (`Database.open`). It starts with one
connection and grows on demand up to `threads` (one per server thread),
and gives back what stays idle: several servers share one PostgreSQL and
its `max_connections`.

A thread holds at most one connection at a time. `connection()` hands a
thread the connection it already holds, if any: every statement of a
transaction runs on one connection (`transaction()`), a checkout keeps one
for its whole length (its advisory lock belongs to that session), and a
thread never waits for a second connection while it holds a first. With
`max_size = threads`, the pool cannot run dry under its own threads.

When the database goes away, nothing hangs and nothing answers 500: a lost
connection, a refused one, or no connection within `POOL_TIMEOUT` seconds
is `StoreUnavailable`, a 503. The pool then checks its other connections
in the background and reconnects when the database is back.

Teams (rooms): each team's tables live in a schema of its own
(`team_schema`), and a worker's teams share one pool: a connection is
pointed at the team that takes it (`SET search_path`, once, only when the
team that last used it was another), so a room of 20 teams costs no more
connections than one bank. Each team has its own range of advisory-lock
keys (`key`), numbered when the team is prepared. The default team keeps
the tables where they always were, and its keys.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg import sql as query
from psycopg.rows import Row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..lab.store import StoreUnavailable
from ..settings import Config
from ..settings.values import hide_password
from . import sql

log = logging.getLogger(__name__)

#: Seconds a request waits for a connection before it answers 503.
POOL_TIMEOUT = 3.0
#: Seconds `/healthz` waits for one.
HEALTH_TIMEOUT = 1.0
#: Seconds libpq waits for a new connection to open.
CONNECT_TIMEOUT = 3
#: Seconds the pool retries a lost connection in the background; after that it grows again on demand.
RECONNECT_TIMEOUT = 10.0
#: Seconds a connection beyond the first may stay idle before the pool closes it.
MAX_IDLE = 30.0
#: Refusals the database makes on purpose (a serialization failure, a deadlock victim, a lock timeout):
#: the code that asked answers them; they do not mean the database is gone.
ANSWERED_BY_CALLERS = frozenset({"40001", "40P01", "55P03"})

#: The team whose tables are where they always were (no schema of its own) and whose keys are 1 to 15.
DEFAULT_TEAM = "default"
#: A team's name (SPEC, Rooms): 1 to 32 of a-z, 0-9 and '-'.
TEAM_NAME = re.compile(r"[a-z0-9-]{1,32}")
#: Prefix of a team's schema: `bankapp_team_red` for team `red` ('-' becomes '_', which names never hold).
TEAM_SCHEMA_PREFIX = "bankapp_team_"
#: First keys of advisory locks each team owns: team number t, KEYS_PER_TEAM * t to KEYS_PER_TEAM * t + 15.
KEYS_PER_TEAM = 16


def team_schema(team: str) -> str | None:
    """The schema of a team's tables; None for the default team (the search path's first schema, as ever)."""
    if team == DEFAULT_TEAM:
        return None
    if not TEAM_NAME.fullmatch(team):
        raise ValueError(f"team: {team!r} is not a team name (1 to 32 of a-z, 0-9 and '-')")
    return TEAM_SCHEMA_PREFIX + team.replace("-", "_")


#: A connection passed to a team: its tables first in the search path, and its name saying whose it is now
#: (`/debug/locks` and `pg_stat_activity` tell the teams apart by it), in one round trip.
POINT_AT_TEAM = "SELECT set_config('search_path', %s, false), set_config('application_name', %s, false)"
#: A connection passed back to the default team: the search path it started with (what `RESET` restores).
POINT_AT_DEFAULT = """
SELECT set_config('search_path', reset_val, false), set_config('application_name', %s, false)
FROM pg_settings WHERE name = 'search_path'"""
#: Which team's schema each pooled connection points at now (absent: the session's default search path).
_POINTED: weakref.WeakKeyDictionary[psycopg.Connection, str] = weakref.WeakKeyDictionary()
#: The pools of this process and their teams, by database URL: each serves one `Database` per team at most.
_POOLS: dict[str, list[tuple[ConnectionPool, int, set[str]]]] = {}
_POOLS_LOCK = threading.Lock()


def lock_timeout_setting(milliseconds: float | None) -> str:
    """`lock_timeout_ms` as PostgreSQL's `lock_timeout`: 'none' is 0 there (wait forever); 0 here is 1 ms."""
    return "0" if milliseconds is None else f"{max(1, round(milliseconds))}ms"


def release_all(conn: psycopg.Connection) -> None:
    """Every session-level advisory lock of the connection given back; if even that fails, the connection is
    closed (the pool then drops it), and the session's locks end with it. It never raises."""
    try:
        conn.execute(sql.UNLOCK_ALL)
    except Exception:
        with contextlib.suppress(Exception):
            conn.close()


def worker_name() -> str:
    """What `X-Served-By` says: this process and thread."""
    return f"{os.getpid()}/{threading.current_thread().name}"


def database_url(config: Config) -> str:
    """The database of the postgres store (`Config` refuses `store=postgres` without one)."""
    if config.database_url is None:
        raise ValueError("the postgres store needs database_url")
    return config.database_url


def one(cursor: psycopg.Cursor[Row]) -> Row:
    """The row of a statement that always answers one (an aggregate, an upsert's `RETURNING`, a `SHOW`)."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("a statement that always answers one row answered none")
    return row


class Database:
    """The pool of this process, opened after the fork, and the connection each thread holds."""

    def __init__(self, url: str, threads: int, team: str = DEFAULT_TEAM):
        self.url = url
        self.public_url = hide_password(url)
        self.max_size = threads
        self.team = team
        self.schema = team_schema(team)
        self._key_base: int | None = 0 if self.schema is None else None  # a team's: read on its first connection
        self._pool: ConnectionPool | None = None
        self._pool_pid: int | None = None
        self._local = threading.local()
        self._checking = threading.Lock()
        self._deadlock_timeout_allowed: bool | None = None

    # the pool

    def pool(self) -> ConnectionPool:
        """This process's pool, opened on first use (a pool inherited through a fork is left alone).

        A worker's teams share one: this `Database` joins the first pool of
        its URL in this process that serves no other `Database` of its team,
        or opens one. A real worker has one lab per team, so one pool; two
        labs of one team in one process (the tests' two workers) get two.
        """
        pid = os.getpid()
        if self._pool is None or self._pool_pid != pid:
            with _POOLS_LOCK:
                if self._pool is None or self._pool_pid != pid:
                    self._pool = self._join_pool(pid)
                    self._pool_pid = pid
        return self._pool

    def _join_pool(self, pid: int) -> ConnectionPool:
        pools = _POOLS.setdefault(self.url, [])
        pools[:] = [shared for shared in pools if shared[1] == pid]  # those inherited through a fork are not ours
        for pool, _, teams in pools:
            if self.team not in teams:
                teams.add(self.team)
                if pool.max_size < self.max_size:
                    pool.resize(pool.min_size, self.max_size)
                return pool
        pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.max_size,
            open=False,
            timeout=POOL_TIMEOUT,
            max_idle=MAX_IDLE,
            reconnect_timeout=RECONNECT_TIMEOUT,
            name=f"bankapp-{pid}",
            kwargs={
                "autocommit": True,
                "application_name": f"bankapp {pid}",
                "connect_timeout": CONNECT_TIMEOUT,
            },
        )
        pool.open()
        pools.append((pool, pid, {self.team}))
        return pool

    def open(self) -> None:
        self.pool()

    def close(self) -> None:
        """Leave this process's pool (a worker stopping); the last team to leave closes it and its connections."""
        with _POOLS_LOCK:
            pool, self._pool = self._pool, None
            if pool is None or self._pool_pid != os.getpid():
                return
            pools = _POOLS.get(self.url, [])
            for index, (shared, _, teams) in enumerate(pools):
                if shared is pool:
                    teams.discard(self.team)
                    if not teams:
                        del pools[index]
                        pool.close(timeout=2)
                    return
            pool.close(timeout=2)

    def pool_stats(self) -> dict[str, Any]:
        if self._pool is None or self._pool_pid != os.getpid():
            return {"open": False}
        stats = self._pool.get_stats()
        return {
            "open": True,
            "max_size": self.max_size,
            "size": stats.get("pool_size", 0),
            "idle": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
            "connections_lost": stats.get("connections_lost", 0) + stats.get("returns_bad", 0),
        }

    # connections

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """The thread's connection, or one from the pool for the length of the block.

        Errors that mean the database cannot answer become `StoreUnavailable`.
        """
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        try:
            with self.pool().connection(timeout) as conn:
                self._local.conn = conn
                try:
                    self._point(conn)
                    yield conn
                finally:
                    self._local.conn = None
        except (PoolTimeout, PoolClosed) as error:
            raise StoreUnavailable(
                f"the postgres store has no connection to {self.public_url} free within "
                f"{timeout or POOL_TIMEOUT:g} s: {error}",
                store="postgres",
            ) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            if error.sqlstate in ANSWERED_BY_CALLERS:
                raise
            self._check_others()
            raise StoreUnavailable(
                f"the postgres store lost the database at {self.public_url}: {' '.join(str(error).split())}",
                store="postgres",
            ) from None

    def _point(self, conn: psycopg.Connection) -> None:
        """Point a connection just taken from the shared pool at this team's tables, if another team's were
        last; a team learns its key range on its first connection."""
        if _POINTED.get(conn) != self.schema:
            name = f"bankapp {os.getpid()}" if self.schema is None else f"bankapp {os.getpid()} team {self.team}"
            if self.schema is None:
                conn.execute(POINT_AT_DEFAULT, (name,))
                _POINTED.pop(conn, None)
            else:
                conn.execute(POINT_AT_TEAM, (query.Identifier(self.schema).as_string(conn), name))
                _POINTED[conn] = self.schema
        if self._key_base is None:
            try:
                row = conn.execute("SELECT number FROM bankapp_team").fetchone()
            except errors.UndefinedTable:
                row = None
            if row is None:
                raise LookupError(
                    f"team {self.team!r} is not in the database: make it first (bankapp.postgres.prepare)"
                )
            self._key_base = KEYS_PER_TEAM * row[0]

    def key(self, kind: int) -> int:
        """The first key of this team's advisory locks of one kind (1 to 15: `locks.ADVISORY_KEYS`)."""
        if self._key_base is None:
            with self.connection():
                pass
        assert self._key_base is not None
        return self._key_base + kind

    def backend_name(self) -> str:
        """What `application_name` says of a transaction: its worker and thread, and its team if not the default."""
        return f"bankapp {worker_name()}" if self.schema is None else f"bankapp {worker_name()} team {self.team}"

    def in_transaction(self) -> bool:
        conn = getattr(self._local, "conn", None)
        return conn is not None and conn.info.transaction_status != pq.TransactionStatus.IDLE

    @contextmanager
    def transaction(
        self, config: Config | None = None, isolation: str | None = None, configure: bool = True
    ) -> Iterator[psycopg.Connection]:
        """`BEGIN ... COMMIT` on the thread's connection (inside another: a savepoint), rolled back on error.

        With `config`, the transaction waits for a lock at most
        `lock_timeout_ms`, looks for a deadlock after `deadlock_check_ms`
        (where the role may set `deadlock_timeout`), and names its worker
        and thread in `pg_stat_activity`. `isolation` is a `SET TRANSACTION`
        statement (`sql.SERIALIZABLE`, `sql.SNAPSHOT`) for an outermost one.
        With `configure=False` the caller's first statement sets those
        settings itself (`settings_params`), saving their round trip.
        """
        with self.connection() as conn:
            outermost = conn.info.transaction_status == pq.TransactionStatus.IDLE
            with conn.transaction():
                if isolation and outermost:
                    conn.execute(isolation)
                if config is not None and configure:
                    self._configure(conn, config)
                yield conn

    def settings_params(self, conn: psycopg.Connection, config: Config) -> dict[str, str]:
        """What `_configure` sets, as parameters of a statement that sets them itself."""
        params = {
            "lock_timeout": lock_timeout_setting(config.lock_timeout_ms),
            "application_name": self.backend_name(),
        }
        if self.deadlock_timeout_allowed(conn):
            params["deadlock_timeout"] = f"{max(1, round(config.deadlock_check_ms))}ms"
        return params

    def _configure(self, conn: psycopg.Connection, config: Config) -> None:
        timeout, name = lock_timeout_setting(config.lock_timeout_ms), self.backend_name()
        if self.deadlock_timeout_allowed(conn):
            deadlock = f"{max(1, round(config.deadlock_check_ms))}ms"
            conn.execute(sql.TRANSACTION_SETTINGS_AND_DEADLOCK_TIMEOUT, (timeout, name, deadlock))
        else:
            conn.execute(sql.TRANSACTION_SETTINGS, (timeout, name))

    def deadlock_timeout_allowed(self, conn: psycopg.Connection) -> bool:
        """May this role set `deadlock_timeout` (a superuser's setting, or one granted)? Asked once."""
        if self._deadlock_timeout_allowed is None:
            try:
                with conn.transaction():
                    conn.execute(sql.DEADLOCK_TIMEOUT_ALLOWED)
                self._deadlock_timeout_allowed = True
            except errors.InsufficientPrivilege:
                self._deadlock_timeout_allowed = False
        return self._deadlock_timeout_allowed

    def deadlock_timeout(self, config: Config) -> dict[str, Any]:
        """The deadlock check in force: ours (`deadlock_check_ms`) where the role may set it, else the server's."""
        with self.connection() as conn:
            if self.deadlock_timeout_allowed(conn):
                return {"deadlock_timeout": f"{max(1, round(config.deadlock_check_ms))}ms", "set_by": "bankapp"}
            server = one(conn.execute(sql.SERVER_DEADLOCK_TIMEOUT))[0]
        return {"deadlock_timeout": server, "set_by": "server (this role may not set it; deadlock_check_ms unused)"}

    def ping(self) -> None:
        """One round trip, waiting at most `HEALTH_TIMEOUT` for a connection; `StoreUnavailable` if none."""
        with self.connection(HEALTH_TIMEOUT) as conn:
            conn.execute("SELECT 1")

    def _check_others(self) -> None:
        """One connection was found broken: check the idle ones in the background, so that after a
        database restart the next requests find fresh connections rather than each a dead one."""
        pool = self._pool
        if pool is None or not self._checking.acquire(blocking=False):
            return

        def check() -> None:
            try:
                pool.check()
            except Exception as error:  # the pool closed meanwhile, or the database is still gone
                log.info("bankapp: pool check failed: %s", error)
            finally:
                self._checking.release()

        threading.Thread(target=check, name="bankapp-pool-check", daemon=True).start()
