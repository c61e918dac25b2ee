"""The settings on the postgres store: read once per request, and fresh for every request that starts later.

Two labs are two workers over one database. `calling` is what the web layer
does at the start of each request (a new `Caller`), so each block below is
one request.
"""

import itertools
import tempfile
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import pq

from bankapp.lab.forensics import calling
from bankapp.lab.guards import GuardTimeout

pytestmark = pytest.mark.postgres


def test_a_request_keeps_the_settings_it_started_with_and_the_next_one_reads_the_patch(make_pg_lab):
    first = make_pg_lab(deposit_guard="unsafe")
    second = make_pg_lab(join=True)
    with calling("req-1", "deposit"):
        assert second.config().deposit_guard == "unsafe"
        first.settings.patch({"deposit_guard": "row-lock"})  # another worker answers a PATCH meanwhile
        assert second.config().deposit_guard == "unsafe"  # this request runs under one version, start to end
    with calling("req-2", "deposit"):  # started after the PATCH's answer: in force
        assert second.config().deposit_guard == "row-lock"
    assert second.config().deposit_guard == "row-lock"  # outside any request: read every time


def test_a_patch_in_a_request_is_in_force_for_the_rest_of_it(make_pg_lab):
    lab = make_pg_lab(deposit_guard="unsafe")
    with calling("req-1", "admin.patch_config"):
        assert lab.config().deposit_guard == "unsafe"
        lab.settings.patch({"deposit_guard": "row-lock"})
        assert lab.config().deposit_guard == "row-lock"


# --- a deposit under atomic-update or row-lock checks the settings in its own statement ---------------------


@contextmanager
def traced(lab):
    """libpq's trace of the lab's pooled connections meanwhile: {"statements": n, "round_trips": n} once done."""
    counted: dict[str, int] = {}
    with lab.db.connection():  # the pool is open and has a connection
        pass
    pool, deadline = lab.db.pool(), time.monotonic() + 10
    connections = list(pool._pool)  # between operations every connection is idle in the pool
    while len(connections) != pool.get_stats()["pool_size"] and time.monotonic() < deadline:
        time.sleep(0.05)  # one the pool is still opening (it grows when a first checkout had to wait)
        connections = list(pool._pool)
    with tempfile.TemporaryFile("w+") as trace:
        for conn in connections:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield counted
        finally:
            for conn in connections:
                conn.pgconn.untrace()
        trace.seek(0)
        sides = [parts[:3] for parts in (line.split("\t", 3) for line in trace) if len(parts) >= 3]
    counted["statements"] = sum(1 for side, _, message in sides if side == "F" and message in ("Execute", "Query"))
    counted["round_trips"] = sum(
        1 for before, after in itertools.pairwise(sides) if (before[0], after[0]) == ("F", "B")
    )


@pytest.mark.parametrize(
    ("guard", "statements", "round_trips"),
    [
        ("atomic-update", 1, 1),  # the guarded UPDATE, which reads the settings' version
        ("row-lock", 4, 4),  # BEGIN, the locking read (which reads the version), the write, COMMIT
    ],
)
def test_a_deposit_reads_the_settings_in_the_statement_that_writes_or_locks(
    make_pg_lab, guard, statements, round_trips
):
    lab = make_pg_lab(deposit_guard=guard)
    for number in range(6):  # psycopg has prepared the statements, the worker has read the settings
        with calling(f"warm-{number}", "deposit"):
            lab.bank.deposit("acc-01", 1)
    with traced(lab) as counted, calling("req-1", "deposit"):
        assert lab.bank.deposit("acc-01", 5) == 100_011
        assert lab.config().deposit_guard == guard  # what it checked is this request's: no read again
    assert counted == {"statements": statements, "round_trips": round_trips}


def test_a_worker_one_patch_behind_runs_the_deposit_under_the_new_guard(make_pg_lab, database_url):
    """atomic-update here, row-lock (200 ms lock timeout) by another worker's PATCH: the deposit times out
    on a held row, as row-lock does, rather than waiting for it as the old guard's UPDATE would."""
    stale = make_pg_lab(deposit_guard="atomic-update", lock_timeout_ms=200)
    other = make_pg_lab(join=True)
    with calling("req-0", "deposit"):
        stale.bank.deposit("acc-02", 1)  # `stale` holds version N: atomic-update
    other.settings.patch({"deposit_guard": "row-lock"})
    with psycopg.connect(database_url, autocommit=True) as holder, holder.transaction():
        holder.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-02' FOR UPDATE")
        with calling("req-1", "deposit"), pytest.raises(GuardTimeout, match="row-lock of acc-02"):
            stale.bank.deposit("acc-02", 7)
        with calling("req-2", "deposit"):
            assert stale.config().deposit_guard == "row-lock"
    with calling("req-3", "deposit"):
        assert stale.bank.deposit("acc-02", 1) == 100_002  # the refused 7 was never applied


def test_a_row_lock_worker_one_patch_behind_neither_locks_nor_times_out_under_the_old_settings(
    make_pg_lab, database_url
):
    """row-lock with a 100 ms lock timeout here; another worker PATCHes atomic-update. The deposit's first read
    finds the settings moved: it locks nothing, so the old timeout never fires, and it runs as atomic-update,
    waiting for the held row until the holder lets go."""
    stale = make_pg_lab(deposit_guard="row-lock", lock_timeout_ms=100)
    other = make_pg_lab(join=True)
    with calling("req-0", "deposit"):
        stale.bank.deposit("acc-03", 1)
    other.settings.patch({"deposit_guard": "atomic-update", "lock_timeout_ms": None})
    answers: list[object] = []

    def deposit():
        with calling("req-1", "deposit"):
            try:
                answers.append(stale.bank.deposit("acc-03", 10))
            except Exception as error:
                answers.append(error)

    with psycopg.connect(database_url, autocommit=True) as holder, holder.transaction():
        holder.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-03' FOR UPDATE")
        depositor = threading.Thread(target=deposit)
        depositor.start()
        depositor.join(0.6)  # six times the old lock timeout
        assert depositor.is_alive(), answers  # still waiting: the old 100 ms did not apply
    depositor.join(30)
    assert answers == [100_011]


def deposit_within(lab, account, seconds):
    """What a deposit on `account` answered (a balance or the error it raised), or "still waiting"."""
    answers: list[object] = []

    def deposit():
        with calling("req-held", "deposit"):
            try:
                answers.append(lab.bank.deposit(account, 1))
            except Exception as error:
                answers.append(error)

    worker = threading.Thread(target=deposit, daemon=True)
    worker.start()
    worker.join(seconds)
    return answers[0] if answers else "still waiting"


def test_an_atomic_update_deposit_waits_for_a_held_row_at_most_the_lock_timeout(make_pg_lab, database_url):
    lab = make_pg_lab(deposit_guard="atomic-update", lock_timeout_ms=200)
    with psycopg.connect(database_url, autocommit=True) as holder, holder.transaction():
        holder.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-05' FOR UPDATE")
        answer = deposit_within(lab, "acc-05", 15)  # its UPDATE's row lock: bounded like any guard's wait
    assert isinstance(answer, GuardTimeout), answer
    assert "atomic-update of acc-05" in str(answer)
    assert lab.stats()["deposits"]["lock_timeouts"] == 1
    assert lab.bank.balance("acc-05") == 100_000  # refused, never applied


def test_a_lock_timeout_patched_by_another_worker_bounds_the_next_atomic_update_deposit(make_pg_lab, database_url):
    stale = make_pg_lab(deposit_guard="atomic-update", lock_timeout_ms=60_000)
    other = make_pg_lab(join=True)
    with calling("req-0", "deposit"):
        stale.bank.deposit("acc-06", 1)  # `stale` holds the 60 s timeout
    other.settings.patch({"lock_timeout_ms": 200})
    with psycopg.connect(database_url, autocommit=True) as holder, holder.transaction():
        holder.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-06' FOR UPDATE")
        answer = deposit_within(stale, "acc-06", 15)  # found the settings moved, ran again under 200 ms
    assert isinstance(answer, GuardTimeout), answer
