"""`bankapp explore --url` on a real server of the postgres store, and its counterexample replayed by
`bankapp interleave` on that server's SQL: the same outcome, the server's bank untouched."""

import json
import subprocess
import sys

import pytest

from bankapp.explore import replayed_outcome
from bankapp.interleave import InvalidSchedule

from ..live import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def bankapp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bankapp", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def server(databases):
    url = databases.create()
    with live_server("--store", "postgres", "--database-url", url, "--threads", "8") as running:
        running.configure(race_window_ms=1)
        yield running


@pytest.mark.parametrize(
    ("scenario", "guard", "outcome"),
    [
        ("transfer", "naive", "deadlock"),  # each holds one row FOR UPDATE and waits for the other's
        ("audit", "release-first", "money-in-flight"),  # the audit's one snapshot between the two commits
        ("transfer", "unsafe", "lost-update"),  # plain reads, no transaction
    ],
)
def test_a_counterexample_found_on_the_database_replays_there_with_the_same_outcome(server, scenario, guard, outcome):
    before = server.get("/stats").json()
    found = bankapp("explore", scenario, "--guard", guard, "--url", server.url, "--json")
    assert found.returncode == 1, found.stderr
    result = json.loads(found.stdout)
    example = result["counterexample"]
    assert result["store"] == "postgres" and result["complete"] and example["outcome"] == outcome
    replay = bankapp(
        "interleave", scenario, "--guard", guard, "--schedule", example["schedule"], "--url", server.url, "--json"
    )
    assert replay.returncode == 0, replay.stderr
    replayed = json.loads(replay.stdout)
    assert replayed["store"] == "postgres" and replayed["ran"] == example["schedule"].split()
    assert replayed_outcome(replayed) == outcome
    printed = bankapp("interleave", scenario, "--guard", guard, "--schedule", example["schedule"], "--url", server.url)
    assert printed.returncode == 0 and "store=postgres" in printed.stdout
    after = server.get("/stats").json()
    assert after["transfers"]["committed"] == before["transfers"]["committed"]  # scratch schemas, not the bank
    assert after["transfers"]["total"] == before["transfers"]["total"]


def test_the_printed_replay_command_names_the_server_and_the_search_is_the_same_every_run(server):
    runs = [bankapp("explore", "transfer", "--guard", "naive", "--url", server.url, "--json") for _ in range(2)]
    first, second = (json.loads(run.stdout) for run in runs)
    assert first == second and first["outcomes"]["deadlock"] > 0
    printed = bankapp("explore", "transfer", "--guard", "naive", "--url", server.url)
    assert printed.returncode == 1
    schedule = first["counterexample"]["schedule"]
    assert f'bankapp interleave transfer --guard naive --schedule "{schedule}" --url {server.url}' in printed.stdout


def test_the_safe_policies_never_fail_on_the_database(server):
    for scenario, guard in [("transfer", "ordered"), ("audit", "naive"), ("deposit", "row-lock")]:
        found = bankapp("explore", scenario, "--guard", guard, "--url", server.url, "--json")
        assert found.returncode == 0, found.stderr
        result = json.loads(found.stdout)
        assert result["store"] == "postgres" and result["counterexample"] is None
        assert result["outcomes"]["ok"] == result["schedules"] + result["equivalent"] > 1


def test_guard_all_lists_the_database_guards_of_a_postgres_server(server):
    table = bankapp("explore", "deposit", "--guard", "all", "--url", server.url, "--json")
    assert table.returncode == 0, table.stderr
    guards = [row["guard"] for row in json.loads(table.stdout)]
    assert guards == ["unsafe", "lock", "rlock", "semaphore", "row-lock", "advisory-lock", "atomic-update",
                      "serializable"]  # fmt: skip
    transfers = bankapp("explore", "transfer", "--guard", "all", "--url", server.url)
    assert transfers.returncode == 0, transfers.stderr
    assert "naive" in transfers.stdout and "backoff" not in transfers.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("transfer", "--guard", "backoff"), "backoff's waits end at a lock_timeout"),
        (("checkout", "--guard", "advisory-semaphore"), "not explored on the database"),
        (("checkout", "--guard", "advisory-lock"), "not explored on the database"),
    ],
)
def test_what_cannot_be_explored_on_the_database_is_a_usage_error_that_says_why(server, args, named):
    refused = bankapp("explore", *args, "--url", server.url)
    assert refused.returncode == 2 and named in refused.stderr, refused.stderr


def test_a_schedule_the_sessions_cannot_follow_is_refused_by_name(server):
    replay = bankapp("interleave", "deposit", "--guard", "row-lock", "--schedule", "a.read b.read b.write a.write",
                     "--url", server.url)  # fmt: skip
    assert replay.returncode == 2
    assert "b.write (step 3): b waits in the database for a lock a holds" in replay.stderr


def test_write_skew_replays_below_zero_on_the_database_and_a_deposit_under_row_lock_waits(database_url):
    """In process, as the server's route runs it: the schedule of write skew under `unsafe` on the postgres store
    (read committed lets each read the other's old balance), and a row-locked deposit's default schedule."""
    from bankapp.explore import replay_anywhere
    from bankapp.settings import load

    config = load({"store": "postgres", "database_url": database_url, "race_window_ms": 1, "threads": 8}, environ={})
    turns = replay_anywhere(config, "write-skew", "unsafe")  # each session a statement in turn
    assert turns["store"] == "postgres" and replayed_outcome(turns) == "below-zero"
    assert sum(turns["final"]["balances"].values()) < 0
    one_then_other = " ".join([f"a.{step.split('.')[1]}" for step in turns["threads"][0]["steps"]]
                              + [f"b.{step.split('.')[1]}" for step in turns["threads"][1]["steps"]])  # fmt: skip
    with pytest.raises(InvalidSchedule, match=r"b.read \(step 8\): every thread has ended before it"):
        replay_anywhere(config, "write-skew", "unsafe", one_then_other)  # b, after a's debit, is refused at once
    deposit = replay_anywhere(config, "deposit", "row-lock")
    assert deposit["ran"] == ["a.read", "b.read", "a.write", "b.write"] and replayed_outcome(deposit) == "ok"
    blocks = [event for event in deposit["events"] if event["event"] == "blocks"]
    waits = {"event": "blocks", "thread": "b", "step": "b.read", "holders": ["a"], "target": "lock on acc-00"}
    assert blocks == [waits]
    memory = replay_anywhere(config, "deposit", "lock", "a.read b.read a.write b.write")
    assert "store" not in memory  # the Python guards replay in memory, as before


@pytest.mark.parametrize(
    ("scenario", "guard"),
    [("transfer", "naive"), ("transfer", "unsafe"), ("transfer", "ordered"), ("deposit", "advisory-lock")],
)
def test_the_database_reduction_skips_only_schedules_equivalent_to_one_run(database_url, scenario, guard):
    """Run plus skipped equals every schedule, outcome by outcome: a commit, a statement that blocks, a changed
    table conflict with every move; statements on different rows commute."""
    from bankapp.explore.database import explore_database
    from bankapp.settings import load

    config = load({"store": "postgres", "database_url": database_url, "race_window_ms": 1, "threads": 8}, environ={})
    reduced = explore_database(config, scenario, guard)
    every = explore_database(config, scenario, guard, reduce=False)
    assert reduced["complete"] and every["complete"] and every["equivalent"] == 0
    assert reduced["outcomes"] == every["outcomes"]
    assert reduced["schedules"] + reduced["equivalent"] == every["schedules"]
