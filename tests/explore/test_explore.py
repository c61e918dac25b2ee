"""`bankapp explore`: every schedule of the lab's real code, counted right, judged in the lab's words, and the
shortest failing one replayed by `bankapp interleave` to the same outcome."""

import json

import pytest

from bankapp.cli import main
from bankapp.explore import InvalidExplore, explore, replayed_outcome
from bankapp.interleave import replay
from bankapp.settings import load

#: Replays run in real time: short lock timeouts and detector periods end their deadlocks soon.
CONFIG = load({"lock_timeout_ms": 300, "deadlock_check_ms": 10, "service_time_ms": 1, "race_window_ms": 1})

FAILING = [
    ("deposit", "unsafe", 2, "lost-update"),
    ("deposit", "unsafe", 3, "lost-update"),
    ("withdraw", "unsafe", 2, "below-zero"),
    ("write-skew", "unsafe", 2, "below-zero"),
    ("batch", "lock", 1, "self-deadlock"),
    ("batch", "semaphore", 1, "self-deadlock"),
    ("transfer", "naive", 2, "deadlock"),
    ("transfer", "naive", 3, "deadlock"),
    ("transfer", "unsafe", 2, "lost-update"),
    ("audit", "release-first", 2, "money-in-flight"),
    ("checkout", "unsafe", 2, "over-capacity"),
]


@pytest.mark.parametrize(("scenario", "guard", "threads", "outcome"), FAILING)
def test_the_shortest_failing_schedule_replays_with_interleave_to_the_same_outcome(scenario, guard, threads, outcome):
    result = explore(CONFIG, scenario, guard, threads)
    example = result["counterexample"]
    assert result["complete"] and example["outcome"] == outcome
    assert result["outcomes"][outcome] > 0
    replayed = replay(CONFIG, scenario, guard, example["schedule"])
    assert replayed_outcome(replayed) == outcome
    assert replayed["schedule"] == example["schedule"]


@pytest.mark.parametrize(
    ("scenario", "guard", "threads"),
    [
        ("deposit", "unsafe", 2),
        ("deposit", "lock", 2),
        ("deposit", "semaphore", 3),
        ("withdraw", "unsafe", 2),
        ("write-skew", "unsafe", 2),
        ("write-skew", "lock", 2),
        ("batch", "rlock", 1),
        ("transfer", "naive", 2),
        ("transfer", "ordered", 2),
        ("audit", "release-first", 2),
        ("checkout", "semaphore", 2),
        ("checkout", "unsafe", 3),
    ],
)
def test_schedules_run_and_skipped_add_up_to_every_schedule_a_search_without_reduction_runs(scenario, guard, threads):
    reduced = explore(CONFIG, scenario, guard, threads)
    every = explore(CONFIG, scenario, guard, threads, reduce=False)
    assert every["equivalent"] == 0 and every["complete"] and reduced["complete"]
    assert reduced["schedules"] + reduced["equivalent"] == every["schedules"]
    assert reduced["outcomes"] == every["outcomes"]
    if reduced["equivalent"]:
        assert reduced["schedules"] < every["schedules"]


def test_two_unguarded_deposits_have_six_schedules_four_classes_and_lose_an_update_in_four():
    result = explore(CONFIG, "deposit", "unsafe", 2)
    assert (result["schedules"], result["equivalent"]) == (4, 2)
    assert result["outcomes"]["lost-update"] == 4 and result["outcomes"]["ok"] == 2
    assert result["counterexample"]["schedule"] == "a.read b.read a.write b.write"


@pytest.mark.parametrize(
    ("scenario", "guard", "threads"),
    [
        ("deposit", "lock", 3),
        ("deposit", "rlock", 3),
        ("withdraw", "lock", 2),
        ("write-skew", "lock", 2),
        ("write-skew", "rlock", 2),
        ("write-skew", "semaphore", 2),
        ("batch", "rlock", 1),
        ("transfer", "ordered", 3),
        ("transfer", "release-first", 2),
        ("audit", "ordered", 2),
        ("checkout", "semaphore", 3),
    ],
)
def test_a_right_guard_fails_in_no_schedule(scenario, guard, threads):
    result = explore(CONFIG, scenario, guard, threads)
    assert result["complete"] and result["counterexample"] is None
    assert result["outcomes"]["ok"] == result["schedules"] + result["equivalent"] >= threads


def test_write_skew_is_judged_by_the_pairs_sum_not_by_one_account_below_zero():
    """One withdrawal alone takes acc-00 below zero, which the customer's rule allows; the other is refused."""
    one_after_the_other = replay(CONFIG, "write-skew", "unsafe", "a.read a.read a.write b.read b.read b.write")
    final = one_after_the_other["final"]
    assert final["balances"]["acc-00"] < 0 and final["balances"]["acc-00"] + final["balances"]["acc-01"] >= 0
    assert [a["ok"] for a in one_after_the_other["answers"]] == [True, False]
    assert replayed_outcome(one_after_the_other) == "ok"
    skewed = replay(CONFIG, "write-skew", "unsafe")  # the scenario's own: both check before either debits
    assert skewed["schedule"] == "a.read b.read a.read a.write b.read b.write"
    assert sum(skewed["final"]["balances"].values()) < 0 and all(a["ok"] for a in skewed["answers"])
    assert skewed["final"]["lost_updates"] == 0  # nothing overwritten: write skew, not a lost update
    assert replayed_outcome(skewed) == "below-zero"


def test_a_guard_that_excludes_on_neither_account_lets_write_skew_through():
    """customer_withdraw takes the guard of both accounts; a semaphore of 2 permits each excludes nobody."""
    config = CONFIG.model_copy(update={"deposit_permits": 2})
    result = explore(config, "write-skew", "semaphore", 2)
    example = result["counterexample"]
    assert result["complete"] and example["outcome"] == "below-zero"
    assert replayed_outcome(replay(config, "write-skew", "semaphore", example["schedule"])) == "below-zero"


@pytest.mark.parametrize(("scenario", "threads"), [("transfer", 2), ("transfer", 3), ("audit", 2)])
def test_backoff_never_deadlocks_its_tries_time_out_in_virtual_time_and_its_retries_end(scenario, threads):
    result = explore(CONFIG, scenario, "backoff", threads)
    assert result["complete"] and result["counterexample"] is None
    assert result["outcomes"]["ok"] == result["schedules"] + result["equivalent"]


def test_three_unsafe_transfers_complete_and_lose_updates():
    result = explore(CONFIG, "transfer", "unsafe", 3)
    assert result["complete"] and result["outcomes"]["lost-update"] > 0


def test_max_schedules_stops_early_and_says_so(capsys):
    result = explore(CONFIG, "transfer", "release-first", 3, max_schedules=5)
    assert result["schedules"] == 5 and not result["complete"]
    assert main(["explore", "transfer", "--guard", "release-first", "--threads", "3", "--max-schedules", "5"]) == 0
    assert "stopped early" in capsys.readouterr().out


def test_the_command_answers_the_same_every_run_and_exits_1_on_a_failing_schedule(capsys):
    argv = ["explore", "transfer", "--guard", "naive", "--threads", "3", "--json"]
    assert main(argv) == 1
    first = capsys.readouterr().out
    assert main(argv) == 1
    assert capsys.readouterr().out == first
    body = json.loads(first)
    assert set(body) >= {"scenario", "guard", "threads", "schedules", "equivalent", "complete", "outcomes"}
    assert body["counterexample"]["outcome"] == "deadlock"
    assert {"schedule", "outcome", "steps"} <= set(body["counterexample"])


def test_guard_all_is_a_table_of_every_guard_and_exits_0(capsys):
    assert main(["explore", "deposit", "--guard", "all", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["guard"] for row in rows] == ["unsafe", "lock", "rlock", "semaphore"]
    assert rows[0]["counterexample"]["outcome"] == "lost-update" and rows[1]["counterexample"] is None
    assert main(["explore", "transfer", "--guard", "all"]) == 0
    table = capsys.readouterr().out
    assert "naive" in table and "deadlock" in table


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["explore", "depot"], "scenario"),
        (["explore", "deposit", "--guard", "naive"], "guard"),
        (["explore", "deposit", "--threads", "4"], "threads"),
        (["explore", "batch", "--threads", "2"], "threads"),
        (["explore", "deposit", "--max-schedules", "0"], "max-schedules"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_it(capsys, argv, names):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"bankapp explore: {names}:")


def test_admin_explore_answers_what_the_command_prints_and_refuses_a_bad_guard(client, lab):
    response = client.post("/admin/explore", json={"scenario": "deposit", "guard": "unsafe"})
    assert response.status_code == 200
    assert response.json == explore(lab.config(), "deposit", "unsafe")
    refused = client.post("/admin/explore", json={"scenario": "deposit", "guard": "naive"})
    assert refused.status_code == 422 and "guard" in refused.json["detail"]


def test_the_last_exploration_is_kept_for_the_dashboard(client):
    assert client.get("/debug/explore").json == {"exploration": None}
    answered = client.post("/admin/explore", json={"scenario": "transfer", "guard": "naive"}).json
    kept = client.get("/debug/explore").json["exploration"]
    assert kept == answered and kept["counterexample"]["outcome"] == "deadlock"
    page = client.get("/").text
    assert 'id="explored"' in page


def test_a_database_guard_is_refused_by_name_on_the_memory_store(client):
    refused = client.post("/admin/explore", json={"scenario": "deposit", "guard": "row-lock"})
    assert refused.status_code == 422
    assert "row-lock is a database guard of the postgres store" in refused.json["detail"]
    with pytest.raises(InvalidExplore, match="advisory-lock is a database guard"):
        explore(CONFIG.model_copy(update={"deposit_guard": "advisory-lock"}), "deposit")


def test_admin_explore_runs_write_skew_and_refuses_a_third_thread(client, lab):
    response = client.post("/admin/explore", json={"scenario": "write-skew", "guard": "unsafe"})
    assert response.status_code == 200 and response.json["counterexample"]["outcome"] == "below-zero"
    assert response.json == explore(lab.config(), "write-skew", "unsafe")
    refused = client.post("/admin/explore", json={"scenario": "write-skew", "guard": "unsafe", "threads": 3})
    assert refused.status_code == 422 and "threads: write-skew runs 2 threads, not 3" in refused.json["detail"]


def test_every_timed_module_is_one_that_reads_the_clock_or_draws_at_random():
    """The explorer's time is virtual only in the modules it patches: a module moved or split (as `admission`
    became a package) must be named where its code now lives, or its waits would run on the machine's clock."""
    import importlib

    from bankapp.explore.explorer import TIMED_MODULES

    for name in TIMED_MODULES:
        module = importlib.import_module(name)
        uses = {getattr(module, "time", None), getattr(module, "random", None)} - {None}
        assert uses, f"{name} imports neither time nor random: the explorer patches nothing there"
    for name in ("bankapp.lab.admission.checkouts", "bankapp.lab.admission.gate", "bankapp.lab.transfers.policies"):
        assert name in TIMED_MODULES, f"{name} waits or draws: its time must be the explorer's"


def test_a_database_guard_that_is_not_explored_on_the_database_says_so_even_without_a_server():
    with pytest.raises(InvalidExplore, match="checkout under advisory-semaphore is not explored on the database"):
        explore(load({}, environ={}), "checkout", "advisory-semaphore")
    with pytest.raises(InvalidExplore, match="row-lock is a database guard of the postgres store"):
        explore(load({}, environ={}), "deposit", "row-lock")


def test_a_server_that_does_not_answer_in_time_is_a_usage_error_that_names_the_bound(monkeypatch, capsys):
    """A real loopback server that answers too late: the command says to bound the search, exit 2, no traceback."""
    import http.server
    import threading
    import time

    from bankapp.explore import command

    class Late(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(1.5)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Late)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(command, "CLIENT_TIMEOUT_S", 0.3)
    try:
        code = main(["explore", "deposit", "--guard", "lock", "--url", f"http://127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
        server.server_close()
    assert code == 2
    assert "bound the search with --max-schedules K" in capsys.readouterr().err
