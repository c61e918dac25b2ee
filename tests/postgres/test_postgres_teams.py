"""Teams (rooms) on the postgres store: two teams and the default one on one database, each with its own state.

A team's lab is `PostgresLab(config, team=NAME)` after `prepare(config, explicit, team=NAME)`: its
tables in its own schema, its own advisory-lock keys, one pool shared with the worker's other teams.
Each test builds real labs on a database of its own and drives them with real threads and sessions.
"""

import multiprocessing
import threading

import psycopg
import pytest

from bankapp.lab.admission import AdmissionRejected
from bankapp.lab.guards import GuardTimeout
from bankapp.postgres import PostgresLab, TeamExists, prepare
from bankapp.postgres.database import KEYS_PER_TEAM, team_schema
from bankapp.settings import load

from ..harness import FAST, run_together
from .test_postgres_store import wait_for_edge

pytestmark = pytest.mark.postgres

OPENING = 100_000


@pytest.fixture
def make_team_lab(database_url):
    """`make_team_lab("red", deposit_guard="row-lock")`: a worker's lab of one team; `join`: take the team's
    settings from the database rather than choosing them."""
    labs = []

    def build(team="default", join=False, **settings):
        chosen = {**FAST, "threads": 8, **settings}
        config = load({**chosen, "store": "postgres", "database_url": database_url}, environ={})
        lab = PostgresLab(prepare(config, set() if join else set(chosen), team=team), team=team)
        labs.append(lab)
        return lab

    yield build
    for lab in labs:
        lab.close()


def holder(database_url, team="default"):
    """A session of someone else's (psql, say) pointed at a team's tables."""
    conn = psycopg.connect(database_url, autocommit=True, application_name="test holder")
    if team != "default":
        conn.execute(f"SET search_path TO {team_schema(team)}")
    return conn


def version(lab):
    """The version of a team's settings, as its workers read it."""
    with lab.db.connection() as conn:
        return conn.execute("SELECT version FROM bankapp_settings").fetchone()[0]


def test_each_team_has_its_own_books_settings_and_counters(make_team_lab):
    default, red, blue = make_team_lab(), make_team_lab("red"), make_team_lab("blue")
    red.bank.deposit("acc-00", 5)
    red.bank.deposit("acc-00", 5)
    blue.bank.withdraw("acc-00", 3)
    default.bank.deposit("acc-00", 7)
    assert [lab.bank.balance("acc-00") for lab in (default, red, blue)] == [OPENING + 7, OPENING + 10, OPENING - 3]
    assert [lab.stats()["deposits"]["acknowledged"] for lab in (default, red, blue)] == [1, 2, 0]

    before = version(blue), version(default)
    red.settings.patch({"deposit_guard": "row-lock", "race_window_ms": 5})
    assert red.config().deposit_guard == "row-lock"
    assert blue.config().deposit_guard == default.config().deposit_guard == "unsafe"
    assert (version(blue), version(default)) == before and version(red) == 2
    # another worker of red (a pool of its own) shares red's books and settings, not the default team's
    other = make_team_lab("red", join=True)
    assert other.config().deposit_guard == "row-lock" and other.bank.balance("acc-00") == OPENING + 10
    other.bank.deposit("acc-00", 1)
    assert red.bank.balance("acc-00") == OPENING + 11 and red.stats()["deposits"]["acknowledged"] == 3


def test_a_reset_touches_only_its_team(make_team_lab):
    default, red, blue = make_team_lab(), make_team_lab("red"), make_team_lab("blue")
    for lab in (default, red, blue):
        lab.bank.deposit("acc-01", 11)
        lab.shop.checkout("flash-sale", 2)
    red.reset()
    assert red.bank.balance("acc-01") == OPENING and red.stats()["deposits"]["acknowledged"] == 0
    assert red.stats()["checkout"]["admitted"] == 0 and red.resets == 1
    for lab in (default, blue):
        assert lab.bank.balance("acc-01") == OPENING + 11
        assert lab.stats()["deposits"]["acknowledged"] == 1 and lab.stats()["checkout"]["admitted"] == 1
        assert lab.resets == 0


def test_a_row_held_in_one_team_blocks_that_team_only(make_team_lab, database_url):
    red = make_team_lab("red", deposit_guard="row-lock", lock_timeout_ms=300)
    blue = make_team_lab("blue", deposit_guard="row-lock", lock_timeout_ms=300)
    default = make_team_lab(deposit_guard="row-lock", lock_timeout_ms=300)
    with holder(database_url, "red") as conn, conn.transaction():
        conn.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-00' FOR UPDATE")
        with pytest.raises(GuardTimeout, match="row-lock of acc-00"):
            red.bank.deposit("acc-00", 1)
        assert blue.bank.deposit("acc-00", 2) == OPENING + 2  # blue's acc-00 is another row of another table
        assert default.bank.deposit("acc-00", 3) == OPENING + 3
    assert red.bank.deposit("acc-00", 4) == OPENING + 4


def test_advisory_keys_are_per_team(make_team_lab, database_url):
    settings = {
        "deposit_guard": "advisory-lock",
        "checkout_guard": "advisory-lock",
        "lock_timeout_ms": 300,
        "max_waiting": 2,
    }
    red, blue, default = make_team_lab("red", **settings), make_team_lab("blue", **settings), make_team_lab(**settings)
    assert default.db.key(1) == 1  # the default team keeps today's keys
    assert len({red.db.key(1), blue.db.key(1), default.db.key(1)}) == 3
    assert red.db.key(1) % KEYS_PER_TEAM == 1 and red.db.key(1) // KEYS_PER_TEAM >= 1
    with holder(database_url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, 0)", (red.db.key(1),))  # red's acc-00
        conn.execute("SELECT pg_advisory_lock(%s, 0)", (red.db.key(2),))  # red's checkout lock
        with pytest.raises(GuardTimeout, match="advisory-lock of acc-00"):
            red.bank.deposit("acc-00", 1)
        red.settings.patch({"admission_timeout_ms": 0})
        with pytest.raises(AdmissionRejected):
            red.shop.checkout("widget", 1)
        for lab in (blue, default):
            assert lab.bank.deposit("acc-00", 2) == OPENING + 2
            assert lab.shop.checkout("widget", 1)
    assert red.bank.deposit("acc-00", 5) == OPENING + 5


def test_an_idempotency_key_is_answered_per_team(make_team_lab):
    red, blue, default = make_team_lab("red"), make_team_lab("blue"), make_team_lab()
    for lab in (red, blue, default):
        assert lab.answers.claim("k-1", f"fingerprint of {lab.team}", ttl=3600)  # each team's first use wins
    red.answers.complete("k-1", (200, b'{"team": "red"}', []))
    assert red.answers.peek("k-1").answer == (200, b'{"team": "red"}', [])
    assert blue.answers.peek("k-1").fingerprint == "fingerprint of blue" and blue.answers.peek("k-1").answer is None
    assert not red.answers.claim("k-1", "again", ttl=3600)


def test_deadlocks_and_their_counts_are_each_teams_own(make_team_lab):
    red = make_team_lab("red", transfer_policy="naive", race_window_ms=300, deadlock_check_ms=20)
    blue, default = make_team_lab("blue"), make_team_lab()
    run_together(
        [lambda: red.transfers.transfer("acc-00", "acc-01", 5), lambda: red.transfers.transfer("acc-01", "acc-00", 5)],
        expect=(Exception,),
    )
    assert red.transfers.debug_locks()["deadlocks_detected"] == 1
    assert len(red.transfers.debug_locks()["recent_deadlocks"]) == 1
    assert red.stats()["transfers"]["deadlock_victims"] == 1
    for lab in (blue, default):
        assert lab.transfers.debug_locks()["deadlocks_detected"] == 0
        assert lab.transfers.debug_locks()["recent_deadlocks"] == []
        assert lab.stats()["transfers"]["deadlock_victims"] == 0


def test_debug_locks_shows_a_team_its_own_waits_only(make_team_lab, database_url):
    red = make_team_lab("red", deposit_guard="row-lock", lock_timeout_ms=20_000)
    blue, default = make_team_lab("blue"), make_team_lab()
    with holder(database_url, "red") as conn:
        with conn.transaction():
            conn.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-02' FOR UPDATE")
            waiter = threading.Thread(target=red.bank.deposit, args=("acc-02", 9))
            waiter.start()
            edges = wait_for_edge(red)
            assert edges[0]["holder"]["name"] == "test holder", edges
            assert edges[0]["waiter"]["name"].endswith(" team red"), edges
            seen = {backend["pid"] for backend in red.transfers.debug_locks()["backends"]}
            for lab in (blue, default):
                view = lab.transfers.debug_locks()
                assert view["wait_for"] == [] and not seen & {backend["pid"] for backend in view["backends"]}
                assert not seen & {lock["pid"] for lock in view["locks"]}
        waiter.join(30)
    assert red.bank.balance("acc-02") == OPENING + 9


def test_a_workers_teams_share_one_pool_and_never_read_each_others_tables(make_team_lab):
    exact = {"deposit_guard": "atomic-update"}
    red, blue, default = make_team_lab("red", **exact), make_team_lab("blue", **exact), make_team_lab(**exact)
    assert red.db.pool() is blue.db.pool() is default.db.pool()
    assert make_team_lab("red").db.pool() is not red.db.pool()  # a second worker of red: a pool of its own
    labs = [red, blue, default] * 4  # twelve threads on a pool of eight, each connection passed between teams
    amounts = {id(red): 1, id(blue): 10, id(default): 100}
    run_together([lambda lab=lab: [lab.bank.deposit("acc-03", amounts[id(lab)]) for _ in range(25)] for lab in labs])
    assert [lab.bank.balance("acc-03") for lab in (red, blue, default)] == [OPENING + 4 * 25 * n for n in (1, 10, 100)]
    for lab, schema in ((red, "bankapp_team_red"), (default, "public"), (blue, "bankapp_team_blue")):
        with lab.db.connection() as conn:  # whichever connection comes, it is this team's, and named so
            name, current = conn.execute("SELECT current_setting('application_name'), current_schema()").fetchone()
        assert current == schema and name.endswith(f" team {lab.team}") == (lab is not default), name


def prepare_team(database_url, team, results):
    config = load({"store": "postgres", "database_url": database_url, "threads": 8}, environ={})
    results.put(prepare(config, set(), team=team).deposit_guard)


def test_preparing_a_team_at_once_from_threads_and_processes_is_safe(database_url):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=prepare_team, args=(database_url, team, results)) for team in ("green",) * 3]
    threads = [threading.Thread(target=prepare_team, args=(database_url, team, results)) for team in ["green"] * 4]
    threads += [threading.Thread(target=prepare_team, args=(database_url, f"t-{n}", results)) for n in range(4)]
    for each in [*processes, *threads]:
        each.start()
    for each in [*processes, *threads]:
        each.join(60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    assert sorted(results.get(timeout=10) for _ in range(11)) == ["unsafe"] * 11
    with psycopg.connect(database_url) as conn:
        teams = conn.execute("SELECT name, number FROM bankapp_teams ORDER BY number").fetchall()
        assert sorted(name for name, _ in teams) == ["green", "t-0", "t-1", "t-2", "t-3"]
        assert [number for _, number in teams] == [1, 2, 3, 4, 5]
        assert conn.execute("SELECT version FROM bankapp_team_green.bankapp_settings").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM bankapp_team_green.bankapp_accounts").fetchone() == (16,)


def test_the_default_team_keeps_its_tables_where_they_were(make_team_lab, database_url):
    make_team_lab().bank.deposit("acc-00", 1)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT balance FROM public.bankapp_accounts WHERE id = 'acc-00'").fetchone() == (
            OPENING + 1,
        )
        assert conn.execute("SELECT to_regclass('bankapp_teams')").fetchone() == (None,)  # no room, no register
    make_team_lab("red")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT name, schema FROM bankapp_teams").fetchall() == [("red", "bankapp_team_red")]
        assert conn.execute("SELECT balance FROM bankapp_team_red.bankapp_accounts WHERE id = 'acc-00'").fetchone() == (
            OPENING,
        )


@pytest.mark.parametrize("name", ["Red", "", "a" * 33, "red team", "red;drop"])
def test_a_name_that_is_no_teams_is_refused(database_url, name):
    config = load({"store": "postgres", "database_url": database_url}, environ={})
    with pytest.raises(ValueError, match="is not a team name"):
        prepare(config, set(), team=name)
    with pytest.raises(ValueError, match="is not a team name"):
        PostgresLab(config, team=name)


def test_of_workers_making_one_team_at_once_one_wins_and_every_worker_sees_it(make_team_lab, database_url):
    default = make_team_lab()
    assert default.teams() == {}  # no room yet
    config = load({"store": "postgres", "database_url": database_url, "threads": 8}, environ={})
    jobs = [lambda n=n: prepare(config, set(), team="red", token_digest=b"digest %d" % n) for n in range(5)]
    results = run_together(jobs, expect=(TeamExists,))
    won = [n for n, result in enumerate(results) if not isinstance(result, Exception)]
    assert len(won) == 1 and sum(isinstance(result, TeamExists) for result in results) == 4, results
    assert default.teams() == {"red": b"digest %d" % won[0]}
    assert make_team_lab(join=True).teams() == default.teams()  # another worker reads the same register
    make_team_lab("red", join=True).bank.deposit("acc-00", 1)  # a worker's lab of it: found, not made again
    make_team_lab("blue")
    assert list(default.teams()) == ["red", "blue"] and default.teams()["blue"] is None


def test_a_team_never_prepared_is_named_not_guessed(make_team_lab, database_url):
    make_team_lab("red")
    config = load({"store": "postgres", "database_url": database_url}, environ={})
    lab = PostgresLab(config, team="blue")  # no worker made blue
    try:
        with pytest.raises(LookupError, match="team 'blue' is not in the database"):
            lab.bank.balance("acc-00")
    finally:
        lab.close()
