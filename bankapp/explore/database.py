"""The postgres store's database guards explored: a step is a SQL statement, a blocked session seen in pg_locks.

`explore_database(config, "deposit", "row-lock")` runs every schedule of
the scenario's deposits (or withdrawals) through the postgres store's own
code (`DatabaseBank` and its guards `row-lock`, `advisory-lock`,
`atomic-update`, `serializable`) on a scratch schema of the server's
database (`bankapp_explore_<pid>_<n>`, dropped at the end), so the bank's
own rows are never touched.

Each thread has its own session. A step is a statement on an account: a
read (`SELECT`, with or without `FOR UPDATE`), a write (`UPDATE`), or an
advisory lock; the rest (settings, counters, `BEGIN`, `COMMIT`) runs
between steps. A statement that waits for another session's lock does not
come back: the explorer asks `pg_blocking_pids()` and, if the session
waits, takes it as blocked and lets the others go on; it goes on when the
lock is let go. Every live session blocked is a deadlock, seen there and
then (PostgreSQL's own detector is set to wait longer than the explorer);
the blocked statements are then cancelled.

The reduction is conservative: every step is taken as conflicting with
every other (the database's locks and snapshots are not modelled), so
every schedule is run and none is skipped.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from ..interleave.scenarios import CUSTOMER, PAIR, skew_amount
from ..interleave.schedule import THREAD_NAMES
from ..postgres.database import database_url, one
from ..settings import DATABASE_GUARDS, Config
from . import clock
from .dpor import Search
from .engine import Aborted, Hang, Move
from .outcomes import OUTCOMES, InvalidExplore

#: Scenarios explored on the database, and how each thread's operation is called on the bank.
OPERATIONS = {
    "deposit": lambda bank, i, config: bank.deposit("acc-00", (10, 20, 30)[i]),
    "withdraw": lambda bank, i, config: bank.withdraw("acc-00", max(1, config.initial_balance * 3 // 5)),
    "write-skew": lambda bank, i, config: bank.customer_withdraw(CUSTOMER, PAIR[i], skew_amount(config)),
}
#: How many threads each runs at most (write skew: one withdrawal per account of the pair).
MOST = {"deposit": 3, "withdraw": 3, "write-skew": 2}
#: How often the explorer looks whether a running session waits for a lock, and how long it waits in all.
POLL_S = 0.002
REST_LIMIT_S = 10.0
_ids = itertools.count(1)

PAUSED, RUNNING, DONE = "paused", "running", "done"


def classify(text: str, params: Any) -> tuple[str, str, str] | None:
    """(kind, target, mode) of a statement that is a step, or None: one on an account row, or an advisory lock."""
    if "pg_advisory" in text:
        return "acquire", f"advisory lock {tuple(params)}", "w"
    if "bankapp_accounts" not in text:
        return None
    target = params[0] if isinstance(params, tuple | list) else (params or {}).get("id")
    if target is None:
        return None
    if "UPDATE bankapp_accounts" in text:
        return "write", target, "w"
    return "read", target, "w" if "FOR UPDATE" in text else "r"


class SteppingConnection:
    """A session whose statements on accounts are steps; everything else is the wrapped connection's."""

    def __init__(self, conn: psycopg.Connection, conductor: DatabaseExecution):
        self._conn = conn
        self._conductor = conductor

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        text = query if isinstance(query, str) else str(query)
        step = classify(text, params)
        run = lambda: self._conn.execute(query, params, **kwargs)  # noqa: E731
        if step is None:
            return run()
        return self._conductor.statement(*step, run, self._conn.info.backend_pid)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@dataclass(eq=False)
class Session:
    name: str
    operation: Callable[[], Any]
    state: str = "new"
    label: str = ""
    pid: int | None = None
    blocked: bool = False
    ident: int | None = None
    error: BaseException | None = None
    result: Any = None
    steps: int = 0
    thread: threading.Thread | None = None
    waits: list[str] = field(default_factory=list)


class DatabaseExecution:
    """One schedule on the database: sessions that pause at their statements, taken one at a time."""

    def __init__(self, sessions: list[Session], choose, monitor: psycopg.Connection):
        self.sessions = {s.name: s for s in sessions}
        self.choose = choose
        self.monitor = monitor
        self.moves: list[Move] = []
        self.end: str | None = None
        self.stuck: list[dict] = []
        self.lab: Any = None
        self._changed = threading.Condition()
        self._turn: Session | None = None
        self._aborting = False
        self._by_ident: dict[int, Session] = {}
        self._clock = clock.VirtualClock()

    def run(self) -> None:
        try:
            for session in self.sessions.values():
                session.state = RUNNING
                session.thread = threading.Thread(target=self._body, args=(session,), daemon=True)
                session.thread.start()
                self._rest()
            while True:
                enabled = [s.name for s in self.sessions.values() if s.state == PAUSED]
                if not enabled:
                    if all(s.state == DONE for s in self.sessions.values()):
                        return
                    self._deadlock()
                    return
                name = self.choose(enabled, self.moves)
                if name is None:
                    self.end = "redundant"
                    return
                session = self.sessions[name]
                with self._changed:
                    self.moves.append(Move(name, session.label))
                    session.state, self._turn = RUNNING, session
                    self._changed.notify_all()
                self._rest()
        finally:
            self._abort()

    def _body(self, session: Session) -> None:
        session.ident = threading.get_ident()
        self._by_ident[session.ident] = session
        clock.install_for(session.ident, self._clock)
        try:
            session.result = session.operation()
        except Aborted:
            pass
        except BaseException as error:
            session.error = error
        finally:
            clock.uninstall_for({session.ident: None})
            with self._changed:
                session.state = DONE
                self._changed.notify_all()

    def statement(self, kind: str, target: str, mode: str, run: Callable[[], Any], pid: int) -> Any:
        session = self._by_ident.get(threading.get_ident())
        if session is None:
            return run()
        with self._changed:
            if self._aborting:
                raise Aborted()
            session.pid, session.label = pid, f"{session.name}.{kind}"
            session.state = PAUSED
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._turn is session or self._aborting)
            if self._aborting:
                raise Aborted()
            self._turn = None
            move = self.moves[-1]
            move.touched |= {(("database", "*"), "w"), (("row", target), mode)}
            move.calls.append(f"{session.name} {kind}s {target}")
        return run()

    def _rest(self) -> None:
        """Wait until every session pauses at a statement, ends, or waits for a lock in the database."""
        deadline = time.monotonic() + REST_LIMIT_S
        while True:
            with self._changed:
                running = [s for s in self.sessions.values() if s.state == RUNNING]
            if not running:
                return
            waiting = self._waiting([s.pid for s in running if s.pid is not None])
            for session in running:
                was, session.blocked = session.blocked, session.pid in waiting
                if was and not session.blocked and self.moves:
                    self.moves[-1].also.add(session.name)  # let go by this move: it goes on within it
            if all(session.blocked for session in running):
                return
            if time.monotonic() > deadline:
                where = ", ".join(f"{s.name} at {s.label or 'its start'}" for s in running if not s.blocked)
                raise Hang(f"{where} did not come back to a statement within {REST_LIMIT_S:g} s", where)
            with self._changed:
                self._changed.wait(POLL_S)

    def _waiting(self, pids: list[int]) -> set[int]:
        if not pids:
            return set()
        rows = self.monitor.execute(
            "SELECT pid FROM unnest(%s::int[]) AS pid WHERE cardinality(pg_blocking_pids(pid)) > 0", (pids,)
        ).fetchall()
        return {row[0] for row in rows}

    def _deadlock(self) -> None:
        blocked = [s for s in self.sessions.values() if s.state == RUNNING]
        by_pid = {s.pid: s.name for s in self.sessions.values()}
        for session in blocked:
            (blockers,) = one(self.monitor.execute("SELECT pg_blocking_pids(%s)", (session.pid,)))
            held_by = sorted(by_pid.get(pid, f"session {pid}") for pid in blockers)
            self.stuck.append({"thread": session.name, "step": session.label, "held_by": held_by})
        own = any(entry["thread"] in entry["held_by"] for entry in self.stuck)
        self.end = "self-deadlock" if own else "deadlock"

    def _abort(self) -> None:
        """Cancel what waits in the database, and unwind every session still alive."""
        with self._changed:
            self._aborting = True
            self._changed.notify_all()
        for session in self.sessions.values():
            if session.state == RUNNING and session.pid is not None:
                self.monitor.execute("SELECT pg_cancel_backend(%s)", (session.pid,))
        for session in self.sessions.values():
            if session.thread is not None:
                session.thread.join(REST_LIMIT_S)


def explore_database(
    config: Config, scenario: str, guard: str, threads: int | None = None, max_schedules: int | None = None
) -> dict:
    """Every schedule of `scenario` under the database guard `guard` on a scratch schema of `config`'s
    database; the same answer as `explore` (no schedule is skipped: `equivalent` is 0)."""
    if scenario not in OPERATIONS:
        raise InvalidExplore(
            f"scenario: the database guards are explored for {', '.join(OPERATIONS)} only, not {scenario}",
            "scenario",
        )
    if guard not in DATABASE_GUARDS - {"advisory-semaphore"} and (guard, scenario) != ("unsafe", "write-skew"):
        raise InvalidExplore(f"guard: {guard} is no database guard of deposits", "guard")
    n = 2 if threads is None else threads
    if not 2 <= n <= MOST[scenario]:
        span = "2" if MOST[scenario] == 2 else f"2 to {MOST[scenario]}"
        raise InvalidExplore(f"threads: {scenario} runs {span} threads, not {n}", "threads")
    from ..lab import bank as lab_bank
    from ..postgres import PostgresLab
    from ..postgres import bank as database_bank
    from ..postgres.schema import prepare

    for module in (lab_bank, database_bank):
        clock.patch(module)
    schema = f"bankapp_explore_{os.getpid()}_{next(_ids)}"
    admin_url = database_url(config)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = make_conninfo(admin_url, options=f"-c search_path={schema}")
    scratch = config.model_copy(
        update={
            "database_url": url,
            "deposit_guard": guard,
            "lock_timeout_ms": None,  # no timeout decides an outcome
            "deadlock_check_ms": 60_000,  # PostgreSQL's detector waits; the explorer sees a deadlock at once
            "workers": 1,
        }
    )
    try:
        lab = PostgresLab(prepare(scratch, explicit=set(Config.model_fields)))
        try:
            with psycopg.connect(url, autocommit=True) as monitor:
                return _search(lab, scenario, guard, n, max_schedules, monitor)
        finally:
            lab.close()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _search(lab, scenario: str, guard: str, n: int, max_schedules: int | None, monitor) -> dict:
    outcomes: Counter[str] = Counter()
    found: list[dict] = []
    original = lab.db.connection

    def execute(choose) -> DatabaseExecution:
        lab.reset()
        config = lab.config()
        sessions = [
            Session(name, functools.partial(OPERATIONS[scenario], lab.bank, i, config))
            for i, name in enumerate(THREAD_NAMES[:n])
        ]
        execution = DatabaseExecution(sessions, choose, monitor)
        lab.db.connection = _stepping(original, execution)
        try:
            execution.run()
        finally:
            lab.db.connection = original
        return execution

    def judge(execution: DatabaseExecution) -> None:
        kind = execution.end if execution.end in ("deadlock", "self-deadlock") else None
        if kind is None:
            deposits = lab.stats()["deposits"]
            balances = lab.store.snapshot()
            # write skew's rule is over the pair's sum: one account of the two may go below zero
            balance = sum(balances[each] for each in PAIR) if scenario == "write-skew" else balances["acc-00"]
            kind = "below-zero" if balance < 0 else "lost-update" if deposits["lost_updates"] else "ok"
        outcomes[kind] += 1
        if kind != "ok" and (not found or len(execution.moves) < len(found[0]["moves"])):
            found[:] = [{"moves": list(execution.moves), "outcome": kind, "stuck": execution.stuck}]

    search = Search(execute, judge, reduce=True, max_schedules=max_schedules)
    stopped = search.run_saying_why_it_stopped()
    example = None
    if found:
        moves = found[0]["moves"]
        example = {
            "schedule": " ".join(move.label for move in moves),
            "outcome": found[0]["outcome"],
            "steps": [{"step": move.label, "does": "; ".join(move.calls)} for move in moves],
        }
        if found[0]["stuck"]:
            example["stuck"] = found[0]["stuck"]
    return {
        "scenario": scenario,
        "guard": guard,
        "threads": n,
        "schedules": search.schedules,
        "equivalent": search.equivalent,
        "complete": search.complete,
        "stopped": stopped,
        "outcomes": {kind: outcomes[kind] for kind in reversed(OUTCOMES)},
        "counterexample": example,
        "store": "postgres",
    }


def _stepping(original, execution: DatabaseExecution):
    from contextlib import contextmanager

    @contextmanager
    def connection(timeout: float | None = None):
        with original(timeout) as conn:
            yield conn if isinstance(conn, SteppingConnection) else SteppingConnection(conn, execution)

    return connection
