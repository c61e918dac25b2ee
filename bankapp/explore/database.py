"""The postgres store explored: a step is a SQL statement, a blocked session seen in pg_locks.

`explore_database(config, "deposit", "row-lock")` runs every schedule of
the scenario through the postgres store's own code (`DatabaseBank` and its
guards `row-lock`, `advisory-lock`, `atomic-update`, `serializable`; the
transfer desk's policies `naive`, `ordered`, `release-first`, `unsafe`) on
a scratch schema of the server's database (`bankapp_explore_<pid>_<n>`,
dropped at the end), so the bank's own rows are never touched. One
schedule runs as `db.session.DatabaseExecution` runs it; `db.replay` runs
one named schedule the same way, for `bankapp interleave`.

The reduction is coarse (see `db.session`): steps on different rows
commute; the end of a transaction, a statement that blocks, a table changed
between steps and the audit's read of every account conflict with every
move; `serializable`, whose conflicts PostgreSQL tracks by page and
predicate, is not reduced.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from ..interleave.actors import error_record
from ..interleave.replay import end_state
from ..interleave.scenarios import CUSTOMER, PAIR, SCENARIOS, TRANSFER_AMOUNT, skew_amount
from ..interleave.schedule import THREAD_NAMES
from ..postgres.database import database_url
from ..settings import Config
from . import clock
from .db.rules import check_database, on_database
from .db.session import DatabaseExecution, Session, SteppingConnection, classify
from .dpor import Search, class_size
from .outcomes import OUTCOMES


def _ring(lab: Any, i: int, n: int, config: Config) -> Any:
    return lab.transfers.transfer(f"acc-{i:02d}", f"acc-{(i + 1) % n:02d}", TRANSFER_AMOUNT)


def _transfer_or_audit(lab: Any, i: int, n: int, config: Config) -> Any:
    return lab.transfers.transfer("acc-00", "acc-01", TRANSFER_AMOUNT) if i == 0 else lab.transfers.audit()


#: Scenarios explored on the database, and what thread i of n calls on the lab (as `bankapp interleave`'s do).
OPERATIONS: dict[str, Callable[[Any, int, int, Config], Any]] = {
    "deposit": lambda lab, i, n, config: lab.bank.deposit("acc-00", (10, 20, 30)[i]),
    "withdraw": lambda lab, i, n, config: lab.bank.withdraw("acc-00", max(1, config.initial_balance * 3 // 5)),
    "write-skew": lambda lab, i, n, config: lab.bank.customer_withdraw(CUSTOMER, PAIR[i], skew_amount(config)),
    "transfer": _ring,
    "audit": _transfer_or_audit,
}
_ids = itertools.count(1)


def setting_of(scenario: str) -> str:
    return SCENARIOS[scenario].setting


@contextmanager
def scratch_database(config: Config, scenario: str, guard: str) -> Iterator[tuple[Any, psycopg.Connection]]:
    """A postgres lab on a scratch schema of `config`'s database under `guard`, and a monitor session;
    the schema is dropped at the end."""
    from ..lab import bank as lab_bank
    from ..postgres import PostgresLab
    from ..postgres import bank as database_bank
    from ..postgres import transfers as database_transfers
    from ..postgres.schema import prepare

    for module in (lab_bank, database_bank, database_transfers):
        clock.patch(module)
    schema = f"bankapp_explore_{os.getpid()}_{next(_ids)}"
    admin_url = database_url(config)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = make_conninfo(admin_url, options=f"-c search_path={schema}")
    scratch = config.model_copy(
        update={
            "database_url": url,
            setting_of(scenario): guard,
            "lock_timeout_ms": None,  # no timeout decides an outcome
            "deadlock_check_ms": 60_000,  # PostgreSQL's detector waits; the explorer sees a deadlock at once
            "workers": 1,
        }
    )
    try:
        lab = PostgresLab(prepare(scratch, explicit=set(Config.model_fields)))
        try:
            with psycopg.connect(url, autocommit=True) as monitor:
                yield lab, monitor
        finally:
            lab.close()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_schedule(
    lab: Any,
    scenario: str,
    n: int,
    choose,
    monitor: psycopg.Connection,
    watch: Callable[[DatabaseExecution], None] | None = None,
) -> DatabaseExecution:
    """One schedule from a fresh bank: `n` sessions of `scenario`, the order `choose` picks (`watch` is
    handed the execution before it starts)."""
    lab.reset()
    config = lab.config()
    sessions = [
        Session(name, functools.partial(OPERATIONS[scenario], lab, i, n, config))
        for i, name in enumerate(THREAD_NAMES[:n])
    ]
    execution = DatabaseExecution(sessions, choose, monitor)
    execution.precise = config.deposit_guard != "serializable" or scenario not in ("deposit", "withdraw", "write-skew")
    if watch is not None:
        watch(execution)
    original = lab.db.connection
    lab.db.connection = _stepping(original, execution)
    try:
        execution.run()
    finally:
        lab.db.connection = original
    return execution


def final_and_answers(lab: Any, execution: DatabaseExecution, scenario: str) -> tuple[dict, list[dict]]:
    """The end state and each session's answer, as a replay of `bankapp interleave` has them (write skew:
    both accounts of the pair, since its rule is over their sum)."""
    stats = lab.stats()
    deposits, transfers = stats["deposits"], stats["transfers"]
    balances = lab.store.snapshot()
    written = sorted(execution.written | (set(PAIR) if scenario == "write-skew" else set()))
    final = end_state(balances, written, deposits, transfers)
    answers = []
    for session in execution.sessions.values():
        if session.state != "done" or session.aborted:
            answers.append({"thread": session.name, "ok": False, "error": "stuck", "detail": "stuck at the end"})
        elif session.error is not None:
            answers.append({"thread": session.name, "ok": False, **error_record(session.error)})
        else:
            answers.append({"thread": session.name, "ok": True, "result": session.result})
    return final, answers


def explore_database(
    config: Config,
    scenario: str,
    guard: str,
    threads: int | None = None,
    max_schedules: int | None = None,
    reduce: bool = True,
) -> dict:
    """Every schedule of `scenario` under the database guard (or, on the postgres store, transfer policy)
    `guard` on a scratch schema of `config`'s database; the same answer as `explore`."""
    n = check_database(scenario, guard, threads)
    with scratch_database(config, scenario, guard) as (lab, monitor):
        return _search(lab, scenario, guard, n, max_schedules, monitor, reduce)


def _search(lab, scenario: str, guard: str, n: int, max_schedules: int | None, monitor, reduce: bool) -> dict:
    from .explorer import classify as judged  # the explorer's judge: one outcome for memory and database

    outcomes: Counter[str] = Counter()
    found: list[dict] = []

    def judge(execution: DatabaseExecution) -> None:
        final, answers = final_and_answers(lab, execution, scenario)
        kind = judged(scenario, final, answers, execution.end)
        outcomes[kind] += class_size(execution.moves) if reduce else 1
        if kind != "ok" and (not found or len(execution.moves) < len(found[0]["moves"])):
            found[:] = [{"moves": list(execution.moves), "outcome": kind, "stuck": execution.stuck}]

    execute = functools.partial(run_schedule, lab, scenario, n, monitor=monitor)
    search = Search(lambda choose: execute(choose), judge, reduce=reduce, max_schedules=max_schedules)
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
    @contextmanager
    def connection(timeout: float | None = None):
        with original(timeout) as conn:
            yield conn if isinstance(conn, SteppingConnection) else SteppingConnection(conn, execution)

    return connection


__all__ = ["OPERATIONS", "classify", "explore_database", "on_database"]
