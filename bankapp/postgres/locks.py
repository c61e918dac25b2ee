"""Who waits for whom, as PostgreSQL sees it, and the deadlocks its detector broke.

In memory, bankapp keeps its own wait-for graph. With the postgres store the
locks are PostgreSQL's, and so is the graph:

- `pg_locks` lists every lock held or awaited. A row lock shows as a
  `tuple` lock and, for a waiter, a `ShareLock` on the holder's
  *transaction id* (rows keep their lockers in the row itself, so a waiter
  waits for the transaction to end); an advisory lock shows by its keys;
- `pg_blocking_pids(pid)` names the backends a backend waits for: the
  edges of the graph;
- `pg_stat_activity.application_name` says which worker and thread each
  transaction serves (bankapp names it at the start of each transaction).

After `deadlock_timeout` a waiting backend follows those edges; if they
lead back to itself, it aborts its own transaction with `40P01` and says
which processes waited for which locks. That description is what the
victim's 409 carries, and what `/debug/locks` keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from psycopg import errors
from psycopg.types.json import Jsonb

from ..lab.guards import Guard, GuardTimeout
from ..lab.ledger import Tally
from ..lab.locks import RECENT_DEADLOCKS, DeadlockVictim
from ..settings import Config
from . import sql
from .database import DEFAULT_TEAM, KEYS_PER_TEAM, TEAM_SCHEMA_PREFIX, Database, one, worker_name

#: First key of the advisory locks, and what each names.
ADVISORY_KEYS = {
    1: "account",
    2: "checkout",
    3: "checkout slot",
    4: "checkout in flight",
    5: "checkout queue place",
    6: "reset",
}

#: The team a bankapp backend's name ends with (`bankapp 4242/Thread-3 team red`); none: the default team.
BACKEND_TEAM = re.compile(r" team ([a-z0-9-]+)$")
STEP = re.compile(r"Process (\d+) waits for (.+?); blocked by process (\d+)\.")


class DatabaseDeadlock(DeadlockVictim):
    """This transfer's transaction was chosen by PostgreSQL as a deadlock victim and rolled back."""

    def __init__(self, deadlock: dict[str, Any]):
        self.deadlock = deadlock
        postgres = deadlock["postgres"]
        Exception.__init__(
            self,
            f"{postgres['message']} by PostgreSQL after deadlock_timeout: {' '.join(postgres['detail'].split())} "
            f"({postgres['context']}). This transfer was the victim: PostgreSQL rolled its transaction back, so "
            "its debit is undone and its row locks are released, and the other transfer goes on",
        )


def parse_cycle(detail: str) -> list[dict[str, Any]]:
    """PostgreSQL's 'Process A waits for L; blocked by process B.' lines as steps of the cycle."""
    return [
        {"process": int(waiter), "waits_for": lock, "blocked_by": int(holder)}
        for waiter, lock, holder in STEP.findall(detail)
    ]


def record_deadlock(db: Database, error: errors.DeadlockDetected, accounts: tuple[str, ...]) -> dict[str, Any]:
    """Keep PostgreSQL's account of a deadlock this request lost (the detecting process is the first step)."""
    diag = error.diag
    detail, context = diag.message_detail or "", diag.context or ""
    cycle = parse_cycle(detail)
    with db.connection() as conn:
        names = dict(conn.execute(sql.BACKENDS, ([step["process"] for step in cycle],)).fetchall())
        me = db.backend_name()
        for index, step in enumerate(cycle):
            step["backend"] = me if index == 0 else names.get(step["process"])
        row_id, detected_at = one(
            conn.execute(sql.RECORD_DEADLOCK, (worker_name(), sorted(accounts), detail, Jsonb(cycle), context))
        )
        conn.execute(sql.PRUNE_DEADLOCKS, (row_id, RECENT_DEADLOCKS))
    return deadlock_record(row_id, detected_at, worker_name(), sorted(accounts), detail, cycle, context)


def deadlock_record(
    row_id: int,
    detected_at: datetime,
    detected_by: str,
    accounts: list[str],
    detail: str,
    cycle: list[dict[str, Any]],
    context: str = "",
) -> dict[str, Any]:
    return {
        "id": row_id,
        "detected_at": detected_at.isoformat(timespec="milliseconds"),
        "detected_by": detected_by,
        "victim": detected_by,
        "broken": True,
        "accounts": list(accounts),
        "cycle": cycle,
        "postgres": {"sqlstate": "40P01", "message": "deadlock detected", "detail": detail, "context": context},
    }


def describe_lock(row: tuple[Any, ...], config: Config, key_base: int = 0) -> str:
    """One row of `sql.LOCKS` in words; an advisory lock's first key read in the team's range (`key_base`)."""
    _, locktype, _, _, relation, page, tuple_, xid, classid, objid, _ = row
    if locktype == "tuple":
        return f"row ({page},{tuple_}) of {relation}"
    if locktype == "transactionid":
        return f"transaction id {xid}"  # a row's locker: whoever waits for the row waits for it to end
    what = ADVISORY_KEYS.get(classid - key_base, f"key {classid}")
    if what == "account" and objid < len(config.account_ids):
        return f"advisory lock of {config.account_ids[objid]}"
    return f"advisory lock ({what} {objid})" if what != "checkout" else "advisory checkout lock"


def debug_locks(db: Database, config: Config) -> dict[str, Any]:
    """The live wait-for graph from `pg_stat_activity`, `pg_blocking_pids()` and `pg_locks`, and the recent
    deadlocks, for `/debug/locks`."""
    with db.transaction() as conn:
        backends = conn.execute(sql.BLOCKING).fetchall()
        pids = sorted({row[0] for row in backends} | {pid for row in backends for pid in row[7]})
        owners = conn.execute(sql.LOCK_OWNERS, (KEYS_PER_TEAM, pids)).fetchall()
        mine = team_backends(db, owners, {pid: None for pid in pids} | {row[0]: row[1] for row in backends})
        backends = [row for row in backends if row[0] in mine]
        locks = conn.execute(sql.LOCKS, (sorted(mine),)).fetchall()
        recent = conn.execute(sql.RECENT_DEADLOCKS, (RECENT_DEADLOCKS,)).fetchall()
        detected = conn.execute("SELECT n FROM bankapp_counters WHERE name = 'transfers.deadlock_victims'")
        detected = (detected.fetchone() or (0,))[0]
    names = {row[0]: row[1] for row in backends}

    def backend(pid: int) -> dict[str, Any]:
        return {"pid": pid, "name": names.get(pid) or "(another session)"}

    key_base = db.key(0)
    waiting = {row[0]: describe_lock(row, config, key_base) for row in locks if not row[3]}
    edges = [
        {"waiter": backend(pid), "holder": backend(holder), "waits_for": waiting.get(pid, wait_event), "waiting_ms": ms}
        for pid, _, _, _, wait_event, ms, _, blockers in backends
        for holder in blockers
    ]
    return {
        "source": "pg_locks, pg_blocking_pids() and pg_stat_activity",
        **db.deadlock_timeout(config),
        "backends": [
            {**backend(pid), "state": state, "query": query, "blocked_by": list(blockers)}
            for pid, _, state, _, _, _, query, blockers in backends
        ],
        "locks": [
            {**backend(row[0]), "lock": describe_lock(row, config, key_base), "mode": row[2], "granted": row[3]}
            for row in locks
        ],
        "wait_for": edges,
        "live_deadlocks": cycles({edge["waiter"]["pid"]: [] for edge in edges}, edges),
        "deadlocks_detected": detected,
        "recent_deadlocks": [deadlock_record(*row) for row in recent],
    }


def team_backends(
    db: Database, owners: list[tuple[int, str | None, int | None]], names: dict[int, str | None]
) -> set[int]:
    """The backends `/debug/locks` shows a team: those named for it (`Database._point`), or holding or
    awaiting a lock on its tables (`bankapp_*` in its schema) or an advisory lock in its key range. The default
    team also sees every backend that is no team's (a `psql` session, another application), as before rooms;
    it never sees another team's."""
    number = db.key(0) // KEYS_PER_TEAM
    marks: dict[int, set[bool]] = {pid: set() for pid in names}
    for pid, name in names.items():
        if name and name.startswith("bankapp "):
            team = BACKEND_TEAM.search(name)
            marks[pid].add((team.group(1) if team else DEFAULT_TEAM) == db.team)
    for pid, schema, keys in owners:
        if schema is not None:
            owner = schema if schema.startswith(TEAM_SCHEMA_PREFIX) else None
            marks[pid].add(owner == db.schema)
        if keys is not None:
            marks[pid].add(keys == number)
    return {pid for pid, mark in marks.items() if True in mark or (db.schema is None and not mark)}


def cycles(graph: dict[int, list[int]], edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cycles in the waiter -> holder graph: deadlocks PostgreSQL has not broken yet (it will, after
    `deadlock_timeout`)."""
    for edge in edges:
        graph[edge["waiter"]["pid"]].append(edge["holder"]["pid"])
    found: list[dict[str, Any]] = []
    seen: set[int] = set()
    for start in graph:
        path, node = [], start
        while node in graph and node not in path:
            path.append(node)
            node = graph[node][0]
        if node in path:
            cycle = path[path.index(node) :]
            if not seen & set(cycle):
                seen |= set(cycle)
                found.append({"processes": cycle})
    return found


class DatabaseLock(Guard):
    """Names a lock that lives in the database, for the 503 that says which one timed out."""

    def __init__(self, name: str, label: str):
        super().__init__(label)
        self.name = name

    def describe(self) -> str:
        return f"{self.name} of {self.label} in the database"


@contextmanager
def database_refusals(db: Database, stats: Tally, config: Config, account_id: str) -> Iterator[None]:
    """PostgreSQL's `lock_timeout` (55P03) is a guard timeout, counted and answered as a Python guard's.

    And its deadlock detector (40P01) can pick a deposit too: a deposit
    queued for a row that a transfer holds is in that row's queue, ahead
    of whoever comes next, and the queue is part of PostgreSQL's wait-for
    graph. When opposing `naive` transfers close a cycle through that
    queue, the deposit may be the victim: its transaction is rolled back
    (nothing applied) and it answers 409 with PostgreSQL's account of the
    cycle, as a transfer victim does.
    """
    try:
        yield
    except errors.DeadlockDetected as error:
        stats.refused("deadlock_victim")
        raise DatabaseDeadlock(record_deadlock(db, error, (account_id,))) from None
    except errors.LockNotAvailable:
        stats.refused("lock_timeout")
        raise GuardTimeout(
            DatabaseLock(config.deposit_guard, account_id), config.lock_timeout(), self_deadlock=False
        ) from None
