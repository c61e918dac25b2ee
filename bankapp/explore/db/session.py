"""One schedule on the database: each session paused at its statements on accounts, taken one at a time.

A step is a statement on an account: a read (`SELECT`, with or without
`FOR UPDATE`), a write (`UPDATE`), an exclusive advisory lock, or the
audit's one `SELECT` over every account. Everything else (settings,
counters, `BEGIN`, `COMMIT`, shared advisory locks that count what is in
flight, unlocks) runs between steps. A statement that waits for another
session's lock does not come back: `pg_blocking_pids()` says the session
waits, and the others go on. Every live session blocked is a deadlock,
seen there and then; the waiting statements are then cancelled.

What each move touches, for the reduction: the row (or advisory lock) of
its statement, locked or written (`w`) or read (`r`), and `EVERYTHING`
read; a move that ends a transaction, blocks, changes a table between
steps or reads every account writes `EVERYTHING`, so it conflicts with
every move (`precise` False: every move does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import pq

from ...postgres import sql
from ...postgres.database import one
from .. import clock
from ..engine import Aborted, Hang, Move

#: How often the explorer looks whether a running session waits for a lock, and how long it waits in all.
POLL_S = 0.002
REST_LIMIT_S = 10.0
PAUSED, RUNNING, DONE = "paused", "running", "done"
#: What every move reads, and a move that changes what all sessions see writes (see `DatabaseExecution.everything`).
EVERYTHING = ("database", "*")


def classify(text: str, params: Any) -> tuple[str, str, str] | None:
    """(kind, target, mode) of a statement that is a step, or None: one on an account row, an exclusive advisory
    lock, or the audit's read of every account. Shared advisory locks (what is in flight, counted) and unlocks
    are bookkeeping: they never make a session of the scenario wait."""
    if "pg_advisory" in text:
        if "unlock" in text or "shared" in text:
            return None
        return "acquire", f"advisory lock {tuple(params or ())}", "w"
    if "bankapp_accounts" not in text:
        return None
    if text.strip() == sql.AUDIT.strip():
        return "read", "every account", "r"
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
            self._conductor.bookkeeping(text, self._conn.info.transaction_status != pq.TransactionStatus.IDLE)
            return run()
        return self._conductor.statement(*step, run, self._conn.info.backend_pid)

    @contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """The wrapped connection's transaction; its end (a commit or a rollback: what others see, the locks let
        go) conflicts with every move."""
        try:
            with self._conn.transaction(*args, **kwargs) as transaction:
                yield transaction
        finally:
            self._conductor.everything()

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
    blocked_at: str = ""  # the step it waits in
    aborted: bool = False  # unwound or cancelled at the end (a deadlock): it never answered


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
        self.written: set[str] = set()
        #: False: every move conflicts with every other (no reduction: `serializable`, whose conflicts PostgreSQL
        #: tracks by page and predicate, not by the rows named here)
        self.precise = True
        #: in order: each step taken (`step`, with what it did), a session waiting in the database (`blocks`,
        #: naming who holds what it waits for) and going on again (`goes on`)
        self.events: list[dict] = []

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
            session.aborted = True
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
            session.waits = [target]
            session.state = PAUSED
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._turn is session or self._aborting)
            if self._aborting:
                raise Aborted()
            self._turn = None
            move = self.moves[-1]
            # every move reads "the database"; one that changes what every session sees writes it (see `everything`)
            whole = self.precise is False or target == "every account"
            move.touched |= {(EVERYTHING, "w" if whole else "r"), (("row", target), mode)}
            move.calls.append(f"{session.name} {kind}s {target}")
            if kind == "write":
                self.written.add(target)
            self.events.append({"event": "statement", "thread": session.name, "step": move.label, "does": kind,
                                "target": target, "locks": mode == "w" and kind != "write"})  # fmt: skip
        return run()

    def bookkeeping(self, text: str, in_transaction: bool) -> None:
        """A statement between steps, by a session of this execution: most are its own (settings, reads of the
        settings, shared advisory locks); a counter bumped inside a transaction holds its row until the end; any
        other change of a table conflicts with every move."""
        if self.precise is False or threading.get_ident() not in self._by_ident or not self.moves:
            return
        words = text.lstrip().split(None, 1)
        verb = words[0].upper() if words else ""
        if verb not in ("INSERT", "UPDATE", "DELETE"):
            return
        if "bankapp_counters" in text:  # increments commute; held inside a transaction, they order its sessions
            if in_transaction:
                self.moves[-1].touched.add((("counters", "*"), "w"))
            return
        self.everything()

    def everything(self) -> None:
        """The current move conflicts with every other (a transaction ended, a table changed)."""
        if threading.get_ident() in self._by_ident and self.moves:
            self.moves[-1].touched.add((EVERYTHING, "w"))

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
                    self.events.append({"event": "goes on", "thread": session.name, "step": session.blocked_at})
                if session.blocked and not was:
                    if self.moves:  # a move that blocks changes who can go: it conflicts with every other
                        self.moves[-1].touched.add((EVERYTHING, "w"))
                    holders, session.blocked_at = self.holders(session), session.label
                    target = f"lock on {session.waits[0]}" if session.waits else "lock"
                    self.events.append(
                        {"event": "blocks", "thread": session.name, "step": session.label, "holders": holders,
                         "target": target}
                    )  # fmt: skip
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

    def holders(self, session: Session) -> list[str]:
        (blockers,) = one(self.monitor.execute("SELECT pg_blocking_pids(%s)", (session.pid,)))
        by_pid = {s.pid: s.name for s in self.sessions.values()}
        return sorted(by_pid.get(pid, f"session {pid}") for pid in blockers)

    def _deadlock(self) -> None:
        blocked = [s for s in self.sessions.values() if s.state == RUNNING]
        by_pid = {s.pid: s.name for s in self.sessions.values()}
        for session in blocked:
            (blockers,) = one(self.monitor.execute("SELECT pg_blocking_pids(%s)", (session.pid,)))
            held_by = sorted(by_pid.get(pid, f"session {pid}") for pid in blockers)
            what = f"lock on {session.waits[0]}" if session.waits else "lock"
            self.stuck.append({"thread": session.name, "step": session.label, "waits_for": what, "held_by": held_by})
        own = any(entry["thread"] in entry["held_by"] for entry in self.stuck)
        self.end = "self-deadlock" if own else "deadlock"

    def _abort(self) -> None:
        """Cancel what waits in the database, and unwind every session still alive."""
        with self._changed:
            self._aborting = True
            self._changed.notify_all()
        waiting = [s for s in self.sessions.values() if s.state == RUNNING and s.pid is not None]
        for session in waiting:
            session.aborted = True
        if waiting:  # all in one statement: one let go by another's rollback must not run on meanwhile
            pids = [session.pid for session in waiting]
            self.monitor.execute("SELECT pg_cancel_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        for session in self.sessions.values():
            if session.thread is not None:
                session.thread.join(REST_LIMIT_S)
