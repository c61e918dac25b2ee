"""`row-lock`'s transaction settings ride with its first `SELECT ... FOR UPDATE`: in force before the row is waited for.

A row held from outside makes the deposit wait; while it waits, PostgreSQL
already shows it under its worker and thread (`application_name`), and the
wait ends at its `lock_timeout` (`lock_timeout_ms`), not when the holder
lets go.
"""

import threading
import time

import psycopg
import pytest

from bankapp.lab.guards import GuardTimeout

pytestmark = pytest.mark.postgres


def waiting_names(database_url: str) -> list[str]:
    with psycopg.connect(database_url, autocommit=True) as observer:
        rows = observer.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchall()
    return [name for (name,) in rows]


def test_a_waiting_row_lock_deposit_is_named_and_bounded_by_its_own_settings(make_pg_lab, database_url):
    lab = make_pg_lab(deposit_guard="row-lock", lock_timeout_ms=3_000)
    outcome: list[object] = []

    def deposit() -> None:
        try:
            outcome.append(lab.bank.deposit("acc-03", 4))
        except Exception as error:  # the test reads which one it was
            outcome.append(error)

    with psycopg.connect(database_url, autocommit=True) as holder, holder.transaction():
        holder.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-03' FOR UPDATE")
        waiter = threading.Thread(target=deposit, name="row-lock-waiter")
        began = time.monotonic()
        waiter.start()
        deadline = time.monotonic() + 20
        names: list[str] = []
        while not names and time.monotonic() < deadline and waiter.is_alive():
            names = waiting_names(database_url)
            time.sleep(0.02)
        assert names and names[0].endswith("/row-lock-waiter"), names  # named before the wait began
        waiter.join(30)  # the holder never lets go inside this block: only the lock timeout ends the wait
        waited = time.monotonic() - began
    assert not waiter.is_alive()
    (result,) = outcome
    assert isinstance(result, GuardTimeout), result
    assert 2.5 <= waited < 25, waited
    assert lab.bank.balance("acc-03") == 100_000
