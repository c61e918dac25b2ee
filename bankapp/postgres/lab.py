"""The lab of one worker on the postgres store: the domain's parts, their state in the shared database.

`PostgresLab` meets `bankapp.lab.LabLike`, as the memory `Lab` does
(`settings`, `bank`, `transfers`, `shop`, `config()`, `reset()`, `stats()`,
`health()`), so the web service does not know which store it runs on. Everything that must be the same on
every worker lives in the database: settings, balances, stock, counters,
gauges, the recent deadlocks. What stays in the process: the Python
guards (that is the lesson), the pool, and the latency samples behind the
percentiles.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from psycopg import errors

from ..lab.admission import RESET_WAIT_S, Gate, ResetBlocked
from ..lab.guards import GuardSet
from ..lab.locks import LockTable
from ..lab.operator import OperatorActions
from ..settings import RESERVED_THREADS, Config
from . import sql
from .answers import SharedAnswers
from .bank import DatabaseBank
from .counters import Counters, Workers
from .database import DEFAULT_TEAM, Database, database_url, one
from .schema import registered_teams
from .settings import DatabaseSettings
from .shop import DatabaseShop
from .store import DatabaseLedger, PostgresStore
from .transfers import DatabaseTransferDesk

#: Seconds one attempt of a reset waits for a row lock before it lets go of all and tries again.
RESET_LOCK_WAIT_S = 2.0
#: First key of the reset's advisory lock (see `locks.ADVISORY_KEYS`).
RESET_KEY = 6


class PostgresLab(OperatorActions):
    """One bank, transfer desk and shop per worker, over one database shared by the fleet.

    `team` (rooms): the team whose bank this is, its tables in its own
    schema (prepare it first: `prepare(config, explicit, team=...)`); a
    worker's teams share one pool of connections (see `database`).
    """

    def __init__(self, config: Config, team: str = DEFAULT_TEAM):
        self.db = Database(database_url(config), config.threads, team)
        self.team = team
        self.settings = DatabaseSettings(self.db, config)
        self.store = PostgresStore(self.db, lambda: self.settings.cached)
        self.guards = GuardSet()
        self.locks = LockTable(config.account_ids)  # the memory store's transfer locks: unused, never held here
        self.counters = Counters(self.db)
        self.workers = Workers(self.db)
        self.ledger = DatabaseLedger(self.db, self.counters, config.initial_balance)
        # this worker's reserve: RESERVED_THREADS threads no operation waiting on a lock can take
        self.gate = Gate(config.threads - RESERVED_THREADS)
        self.bank = DatabaseBank(self.db, self.store, self.settings, self.ledger, self.guards, self.locks, self.gate)
        self.transfers = DatabaseTransferDesk(self.db, self.config, self.counters, self.gate)
        self.shop = DatabaseShop(self.db, self.config, self.guards, self.gate, self.counters)
        self.answers = SharedAnswers(self.db)  # Idempotency-Key answers, remembered by the fleet

    def config(self) -> Config:
        """The settings in force now, read from the database (once per request: asked again, the same)."""
        return self.settings.current

    def start(self) -> None:
        """In a worker, after the fork: open this process's pool and register the worker."""
        self.db.open()
        self.workers.start()

    def close(self) -> None:
        """As the worker stops: record what it served, close its connections."""
        self.workers.stop()
        self.db.close()

    def served(self) -> None:
        self.workers.served()

    def health(self) -> dict[str, Any]:
        """200 when the database answers a round trip, else `StoreUnavailable` (503)."""
        self.db.ping()
        return {"status": "ok", "store": "postgres"}

    def reset(self) -> dict[str, Any]:
        """Balances, stock, counters and peaks back to the start, in one transaction; settings stay.

        In this worker the reset is atomic with respect to requests, as in
        memory (`Gate.closed`: deadlocks of the Python guards broken, the
        requests in flight drained, newcomers held at the door). Across the
        fleet the database does the excluding: the accounts are locked
        first (by the UPDATE), so a deposit holding a row lock on another
        worker finishes before the reset, and one that comes after sees the
        reset balances.
        """
        broken: list[dict[str, Any]] = []
        with self.gate.closed(unblock=lambda: broken.extend(self.break_deadlocks()), describe=self.whereabouts):
            self._reset_database()
            self.shop.admission.reset()
            self.shop.ledger.reset()
            self.gate.reset()
        return {"deadlocks_broken": broken}

    def _reset_database(self) -> None:
        """The reset's transaction: its locks first, in one order (`sql.RESET_LOCKS`), then the writes.

        A deadlock with it (a `naive` transfer holds one account and wants
        the other) or a lock it could not get within `RESET_LOCK_WAIT_S` is
        retried until `RESET_WAIT_S`; only then does it answer 503
        (`reset-blocked`, with `Retry-After`), having changed nothing.
        """
        deadline = time.monotonic() + RESET_WAIT_S
        attempts = 0
        while True:
            attempts += 1
            try:
                with self.db.transaction() as conn:
                    conn.execute(sql.RESET_LOCK_TIMEOUT, (f"{round(RESET_LOCK_WAIT_S * 1000)}ms",))
                    conn.execute(sql.RESET_LOCKS[0], (self.db.key(RESET_KEY),))  # one reset at a time per team
                    for statement in sql.RESET_LOCKS[1:]:
                        conn.execute(statement)
                    conn.execute(sql.RESET_ACCOUNTS)
                    conn.execute(sql.RESET_STOCK)
                    self.counters.reset()
                    self.workers.reset()
                    conn.execute(sql.RESET_DEADLOCKS)
                    for statement in sql.RESET_RACES:
                        conn.execute(statement)
                    conn.execute(sql.COUNT_RESET)
                return
            except (errors.DeadlockDetected, errors.LockNotAvailable) as error:
                if time.monotonic() >= deadline:
                    raise ResetBlocked(RESET_WAIT_S, [], f"{attempts} attempts: {error.sqlstate} {error}") from None
                time.sleep(random.uniform(0.01, 0.05))

    def teams(self) -> dict[str, bytes | None]:
        """The room's teams, as every worker and machine sees them: name and token digest (see
        `schema.prepare`); asked of the default team's lab (a team's connections see its own schema only)."""
        with self.db.connection() as conn:
            return registered_teams(conn)

    def room_frozen(self) -> bool:
        """Whether the instructor froze the room (rooms; asked of the default team's lab, as `teams`)."""
        with self.db.connection() as conn:
            if not one(conn.execute(sql.ROOM_STATE_MADE))[0]:
                return False
            return bool(one(conn.execute(sql.ROOM_FROZEN))[0])

    def freeze_room(self, frozen: bool) -> None:
        """Freeze or thaw the room for every worker of the fleet."""
        with self.db.transaction() as conn:
            conn.execute(sql.ROOM_STATE)
            conn.execute(sql.ROOM_FREEZE, (frozen,))

    @property
    def resets(self) -> int:
        """`POST /admin/reset` calls, fleet-wide, never zeroed (for `bankapp_lab_resets_total`)."""
        return self._resets()[0]

    @property
    def counters_since(self) -> float:
        """When the counters last restarted from zero, in epoch seconds, fleet-wide (the counters' `_created`)."""
        return self._resets()[1]

    def _resets(self) -> tuple[int, float]:
        with self.db.connection() as conn:
            resets, since = one(conn.execute(sql.RESETS))
        return resets, since

    def races(self, limit: int) -> dict[str, Any]:
        """What `/debug/races` shows, for the whole fleet (see `store.record_erasure`)."""
        return self.store.races(limit)

    def stats(self) -> dict[str, Any]:
        """Every counter of the fleet from one snapshot (a REPEATABLE READ transaction), and who served."""
        config = self.config()
        self.workers.flush()
        with self.db.transaction(isolation=sql.SNAPSHOT):
            counters, gauges = self.counters.read()  # first: the live gauges as close to the snapshot as can be
            rows = self.ledger.rows()
            stock = self.shop.inventory.rows()
            workers = self.workers.rows()
        deposits = self.ledger.report(rows, counters)
        return {
            "deposits": deposits,
            "transfers": self.transfers.report(config, counters, gauges, deposits),
            "checkout": self.shop.report(config, counters, gauges, stock),
            "store": {"kind": "postgres", "database_url": self.db.public_url, "pool": self.db.pool_stats()},
            "workers": {"served_by": os.getpid(), "pids": [row["pid"] for row in workers], "served": workers},
            "operations": self.gate.report(),  # this worker's: the cap is per process
            "settings": config.public(),
        }
