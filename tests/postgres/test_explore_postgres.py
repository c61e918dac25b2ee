"""The postgres store's database guards explored on a real PostgreSQL: each statement on an account a step,
a session waiting for another's lock seen in pg_blocking_pids, every schedule run."""

import psycopg
import pytest

from bankapp.explore import explore
from bankapp.settings import load

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_config(database_url):
    return load({"store": "postgres", "database_url": database_url, "race_window_ms": 1, "threads": 8})


@pytest.mark.parametrize("guard", ["row-lock", "advisory-lock", "atomic-update"])
def test_the_database_guards_lose_no_deposit_in_any_schedule(pg_config, guard):
    result = explore(pg_config, "deposit", guard)
    assert result["complete"] and result["store"] == "postgres"
    assert result["counterexample"] is None
    assert result["outcomes"]["ok"] == result["schedules"] + result["equivalent"] > 1


@pytest.mark.parametrize("guard", ["serializable"])
def test_serializable_retries_what_postgres_aborts_and_loses_nothing(pg_config, guard):
    result = explore(pg_config, "withdraw", guard)
    assert result["complete"] and result["counterexample"] is None


def test_a_read_that_locks_nothing_loses_an_update_in_the_database_and_the_explorer_finds_it(pg_config, monkeypatch):
    """The same explorer, the row lock taken out of `row-lock`'s read: two sessions read 100000, both write."""
    from bankapp.postgres import bank, store

    monkeypatch.setattr(
        bank.RowLock, "read", lambda self, conn, account_id, config: store.read_balance(conn, account_id)
    )
    result = explore(pg_config, "deposit", "row-lock")
    example = result["counterexample"]
    assert result["complete"] and example["outcome"] == "lost-update"
    assert example["schedule"] == "a.read b.read a.write b.write"
    assert 0 < result["outcomes"]["lost-update"] < result["schedules"] + result["equivalent"]


def test_the_scratch_schema_is_dropped_and_the_banks_rows_are_untouched(pg_config, database_url):
    explore(pg_config, "withdraw", "row-lock")
    with psycopg.connect(database_url) as conn:
        schemas = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bankapp_explore_%'").fetchall()
    assert schemas == []


@pytest.mark.parametrize(
    ("guard", "skews"),
    [
        # plain reads in read committed: each reads the other's old balance (252 schedules, 19 of them run)
        ("unsafe", True),
        ("row-lock", False),  # FOR UPDATE of both rows, in id order: the second waits for the first's commit
        ("advisory-lock", False),  # an advisory lock per account, both taken
        ("serializable", False),  # PostgreSQL aborts one (40001), its retry reads the new sum and is refused
        ("atomic-update", False),  # one statement: a step of its own, so no schedule runs inside it (see docs)
    ],
)
def test_write_skew_on_the_database_fails_only_where_the_check_guards_neither_row(pg_config, guard, skews):
    result = explore(pg_config, "write-skew", guard)
    assert result["complete"], result["stopped"]  # a hang or a nondeterministic run says which step
    assert result["store"] == "postgres" and result["threads"] == 2
    if skews:
        example = result["counterexample"]
        total = result["schedules"] + result["equivalent"]
        assert example["outcome"] == "below-zero" and 0 < result["outcomes"]["ok"] < total
        assert example["schedule"].startswith("a.read a.read")  # a reads the pair's balances before any write
    else:
        assert result["counterexample"] is None
        assert result["outcomes"]["ok"] == result["schedules"] + result["equivalent"] >= 2
