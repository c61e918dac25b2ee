"""The settings on the postgres store: read once per request, and fresh for every request that starts later.

Two labs are two workers over one database. `calling` is what the web layer
does at the start of each request (a new `Caller`), so each block below is
one request.
"""

import threading
from contextlib import contextmanager

import psycopg
import pytest

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
def statements_sent():
    """Every statement this thread sends through psycopg meanwhile (a round trip each, outside a pipeline)."""
    sent: list[str] = []
    execute = psycopg.Connection.execute
    me = threading.get_ident()

    def counting(self, query, *args, **kwargs):
        if threading.get_ident() == me:
            sent.append(" ".join(str(query).split())[:60])
        return execute(self, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.Connection, "execute", counting)
        yield sent


@pytest.mark.parametrize(("guard", "statements"), [("atomic-update", 1), ("row-lock", 2)])
def test_a_deposit_reads_the_settings_in_the_statement_that_writes_or_locks(make_pg_lab, guard, statements):
    lab = make_pg_lab(deposit_guard=guard)
    with calling("req-0", "deposit"):
        lab.bank.deposit("acc-01", 1)  # the worker has read the settings once
    with statements_sent() as sent, calling("req-1", "deposit"):
        assert lab.bank.deposit("acc-01", 5) == 100_006
        assert lab.config().deposit_guard == guard  # what it checked is this request's: no read again
    # atomic-update: the guarded UPDATE alone; row-lock: the locking read and the write (psycopg sends BEGIN
    # and COMMIT itself), and no settings read of their own
    assert len(sent) == statements, sent
    assert not any("bankapp_settings" in each and "bankapp_accounts" not in each for each in sent), sent


def test_a_worker_one_patch_behind_runs_the_deposit_under_the_new_guard(make_pg_lab, database_url):
    """atomic-update here, row-lock (200 ms lock timeout) by another worker's PATCH: the deposit times out
    on a held row, as row-lock does, rather than waiting for it as the old guard's UPDATE would."""
    stale = make_pg_lab(deposit_guard="atomic-update", lock_timeout_ms=200)
    other = make_pg_lab(join=True)
    with calling("req-0", "deposit"):
        stale.bank.deposit("acc-02", 1)  # `stale` holds version N: atomic-update
    other.settings.patch({"deposit_guard": "row-lock"})
    with psycopg.connect(database_url, autocommit=True) as holder:
        with holder.transaction():
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
            except Exception as error:  # noqa: BLE001 (the assertion below names it)
                answers.append(error)

    with psycopg.connect(database_url, autocommit=True) as holder:
        with holder.transaction():
            holder.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-03' FOR UPDATE")
            depositor = threading.Thread(target=deposit)
            depositor.start()
            depositor.join(0.6)  # six times the old lock timeout
            assert depositor.is_alive(), answers  # still waiting: the old 100 ms did not apply
    depositor.join(30)
    assert answers == [100_011]
