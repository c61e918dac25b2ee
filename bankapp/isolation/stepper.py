"""Real sessions stepped in a fixed order, as PostgreSQL's isolation tester does.

Each session is its own psycopg connection (its own backend) with one thread
that runs its statements. The stepper sends one step, then waits until the
step has finished or its backend is seen blocked: `pg_blocking_pids(pid)`
of that session's backend, read by a separate observer connection, the test
`isolationtester` makes with `pg_isolation_test_session_is_blocked`. A
blocked step is left running and the permutation goes on (usually the
blocker commits and the blocked step completes); after every step each
waiting step is checked again. What every step returned, raised, and whom
it waited for is kept in a `Trace` for the judge.

Everything happens in a scratch schema that `Stepper` creates and drops, on
a table `test (id int primary key, value int)` made anew before each case
with Hermitage's rows `(1, 10), (2, 20)`.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from .steps import Step

#: Hermitage's setup, before every case.
INITIAL = {1: 10, 2: 20}
#: A step that neither finishes nor is seen blocked within this is a broken case, not a slow machine.
STEP_BOUND_S = 60.0
#: How often a running step is looked at (pg_blocking_pids) while it has not finished.
POLL_S = 0.005

Rows = tuple[tuple[int, int], ...]


class IsolationError(Exception):
    """The run could not be carried out (database unreachable, a step that hangs); the message says which."""


@dataclass
class Done:
    """What one step did, in the permutation's order."""

    step: Step
    status: str = "running"  # ok, error, skipped
    rows: Rows = ()
    sqlstate: str | None = None
    message: str = ""
    tag: str = ""  # the server's command tag: COMMIT, ROLLBACK, UPDATE 1
    waited_for: tuple[str, ...] = ()  # sessions whose backends blocked it
    finished: int = -1  # when it finished, among all steps
    newest: dict[int, int] | None = None  # for a read: the newest version of each row (committed or not) then

    @property
    def old_version(self) -> bool:
        """A read that returned something else than the newest versions: it saw a snapshot."""
        if self.step.where is None or self.newest is None or self.status != "ok":
            return False
        newest = tuple(sorted((k, v) for k, v in self.newest.items() if self.step.where(k, v)))
        return newest != self.rows

    def line(self) -> str:
        """The step as the isolation tester prints it."""
        out = str(self.step)
        if self.waited_for:
            out += f" <waiting on {', '.join(self.waited_for)}>"
        if self.status == "skipped":
            return out + " (skipped: the transaction had failed)"
        if self.status == "error":
            return out + f" -> ERROR {self.sqlstate}: {self.message}"
        if self.step.where is not None:
            return out + " -> " + (", ".join(f"{k} => {v}" for k, v in self.rows) or "no rows")
        if self.step.kind == "commit" and self.tag != "COMMIT":
            return out + f" -> {self.tag}"
        return out


@dataclass
class Trace:
    """One case at one level, as it ran."""

    level: str
    done: list[Done]
    initial: dict[int, int]
    final: dict[int, int] = field(default_factory=dict)

    def committed(self, session: str) -> bool:
        return any(d.step.session == session and d.step.kind == "commit" and d.tag == "COMMIT" for d in self.done)


class Session:
    """One connection and the one thread that runs its statements."""

    def __init__(self, name: str, url: str, schema: str | None):
        self.name = name
        self.conn = connect(url, f"bankapp isolation {name}", schema)
        self.pid = self.conn.info.backend_pid
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"isolation-{name}")
        self.running: tuple[Done, Future[tuple[Rows, str]]] | None = None
        self.failed = False  # its transaction raised: the rest of it is skipped until commit or abort

    def execute(self, text: str) -> tuple[Rows, str]:
        with self.conn.cursor() as cursor:
            cursor.execute(text.encode())  # the case's own fixed SQL, no parameters
            rows = tuple(tuple(row) for row in cursor.fetchall()) if cursor.description else ()
            return rows, cursor.statusmessage or ""

    def close(self) -> None:
        self.thread.shutdown(wait=True)
        self.conn.close()


def connect(url: str, application: str, schema: str | None = None) -> psycopg.Connection:
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name=application)
    except psycopg.Error as error:
        raise IsolationError(f"database_url: cannot connect ({' '.join(str(error).split())})") from error
    # bounds, so that no mistake in a case can hang a run: a lock wait or a statement this long is a bug
    conn.execute("set lock_timeout = '60s'")
    conn.execute("set statement_timeout = '60s'")
    conn.execute("set idle_in_transaction_session_timeout = '300s'")
    if schema:
        conn.execute(sql.SQL("set search_path to {}").format(sql.Identifier(schema)))
    return conn


class Stepper:
    """A scratch schema, an observer and up to three sessions; `run(steps, level)` one case at one level."""

    def __init__(self, url: str, sessions: tuple[str, ...] = ("T1", "T2", "T3"), scratch: bool = True):
        """`scratch`: a schema of its own with Hermitage's table; False: the database's own tables (the bank's)."""
        self.url = url
        self.schema = f"bankapp_isolation_{secrets.token_hex(4)}" if scratch else None
        self.observer = connect(url, "bankapp isolation observer")
        self.sessions: dict[str, Session] = {}
        self.finished = 0
        self.pending: dict[str, dict[int, int | None]] = {}
        try:
            if self.schema:
                self.observer.execute(sql.SQL("create schema {}").format(sql.Identifier(self.schema)))
                self.observer.execute(sql.SQL("set search_path to {}").format(sql.Identifier(self.schema)))
            for name in sessions:
                self.sessions[name] = Session(name, url, self.schema)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Stepper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        try:
            if self.schema:
                self.observer.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(self.schema)))
        finally:
            self.observer.close()

    def setup(self) -> None:
        """Hermitage's setup: a fresh `test` table with its two rows."""
        self.observer.execute("drop table if exists test")
        self.observer.execute("create table test (id int primary key, value int)")
        self.observer.execute("insert into test (id, value) values (1, 10), (2, 20)")

    def committed_state(self) -> dict[int, int]:
        return dict(self.observer.execute("select id, value from test").fetchall())

    def run(self, steps: tuple[Step, ...], level: str) -> Trace:
        self.setup()
        names = sorted({step.session for step in steps})
        trace = Trace(level, [], dict(INITIAL))
        self.begin(level, names)
        try:
            for step in steps:
                trace.done.append(self.step(step))
        finally:
            self.end(names)
        trace.final = self.committed_state()
        return trace

    def begin(self, level: str, names: list[str]) -> None:
        """Each session's setup, as in a spec: `BEGIN ISOLATION LEVEL <level>`."""
        self.finished = 0
        self.pending = {name: {} for name in names}
        for name in names:
            session = self.sessions[name]
            session.failed = False
            session.execute(f"begin isolation level {level}")

    def end(self, names: list[str]) -> None:
        """Let every step still running finish, and leave nothing open for the next case."""
        try:
            for name in names:
                self.settle(self.sessions[name], until_done=True)
        finally:
            for name in names:
                self.sessions[name].execute("rollback")

    def step(self, step: Step) -> Done:
        session = self.sessions[step.session]
        self.settle(session, until_done=True)  # a session runs one statement at a time
        done = Done(step)
        if session.failed and step.kind not in ("commit", "abort"):
            done.status = "skipped"
            return done
        if step.where is not None and self.schema:
            done.newest = self.newest_versions()
        text = "rollback" if step.kind == "abort" else step.sql
        session.running = (done, session.thread.submit(session.execute, text))
        self.settle(session, until_done=False)
        for other in self.sessions.values():  # did this step let a waiting one go on?
            if other is not session:
                self.settle(other, until_done=False)
        return done

    def settle(self, session: Session, until_done: bool) -> None:
        """Wait for the session's running step to finish, or (unless `until_done`) to be seen blocked."""
        if session.running is None:
            return
        done, future = session.running
        deadline = time.monotonic() + STEP_BOUND_S
        while True:
            try:
                outcome = future.exception(timeout=POLL_S)
            except FutureTimeout:
                row = self.observer.execute("select pg_blocking_pids(%s)", (session.pid,)).fetchone()
                blockers = row[0] if row else []  # an array, never no row
                if blockers:
                    by_pid = {s.pid: s.name for s in self.sessions.values()}
                    done.waited_for = tuple(sorted({by_pid.get(pid, f"pid {pid}") for pid in blockers}))
                    if not until_done:
                        return
                if time.monotonic() > deadline:
                    stuck = f"{done.step} neither finished nor waited on a lock in {STEP_BOUND_S:.0f} s"
                    raise IsolationError(stuck) from None
                continue
            break
        session.running = None
        self.finished += 1
        done.finished = self.finished
        if outcome is None:
            done.rows, done.tag = future.result()
            done.status = "ok"
        elif isinstance(outcome, psycopg.Error):
            done.status, done.sqlstate = "error", outcome.sqlstate
            done.message = outcome.diag.message_primary or str(outcome)
            session.failed = True
        else:
            raise outcome
        self.record_writes(done)

    def record_writes(self, done: Done) -> None:
        """Keep the versions written and not yet committed, to know what 'the newest version' is."""
        name, kind = done.step.session, done.step.kind
        if done.status != "ok" or kind in ("commit", "abort"):
            if kind in ("commit", "abort") or done.status == "error":
                self.pending[name] = {}
            return
        if kind in ("update", "insert"):
            self.pending[name].update(dict(done.rows))
        elif kind == "delete":
            self.pending[name].update({key: None for key, _ in done.rows})

    def newest_versions(self) -> dict[int, int]:
        state: dict[int, int | None] = dict(self.committed_state())
        for writes in self.pending.values():
            state.update(writes)
        return {key: value for key, value in state.items() if value is not None}
