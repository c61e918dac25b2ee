"""`GET /dashboard/history`: the dashboard's run kept on the server, bounded, started again at a reset, and where the
bank's money went (Flask's client, real threads; the browser's side is in tests/e2e/test_e2e_history.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from bankapp.rooms import TEAM
from bankapp.web.every_request import EveryRequest
from bankapp.web.history import COLUMNS, History, history_of, samples


@pytest.fixture
def every_request_samples(monkeypatch):
    """A sample per request rather than per second: the tests do not wait for the clock."""
    monkeypatch.setattr(samples, "INTERVAL_S", 0.0)


def deposit(client, account="acc-00", amount=5):
    with client.post(f"/accounts/{account}/deposit", json={"amount": amount}) as response:  # closed: sampled
        assert response.status_code == 200


def stats(acknowledged=0, admitted=0, lost=0, guard="lock", policy="ordered", total=100, expected=100) -> dict:
    """A `/stats` answer as small as `History.record` reads it."""
    return {
        "deposits": {"acknowledged": acknowledged, "balance_change": total - 100, "lost_updates": lost},
        "checkout": {"admitted": admitted, "rejected": 0, "in_flight": 0, "waiting": 0, "latency_ms": {}},
        "transfers": {"committed": 0, "deadlocks": 0, "total": total, "expected_total": expected},
        "settings": {"deposit_guard": guard, "deposit_permits": 1, "transfer_policy": policy},
    }


def test_the_answer_has_every_column_one_value_a_sample(client, every_request_samples):
    for _ in range(3):
        deposit(client)
    history = client.get("/dashboard/history").json
    assert history["columns"] == list(COLUMNS) and set(history["series"]) == set(COLUMNS)
    assert history["samples"] >= 3
    assert {len(values) for values in history["series"].values()} == {history["samples"]}
    assert history["series"]["t"] == sorted(history["series"]["t"])
    assert history["series"]["acknowledged"][-1] == 3 and history["series"]["balance_change"][-1] == 15
    assert history["capacity"] == samples.CAPACITY and history["started_at"] == history["series"]["t"][0]
    assert history["settings"][0]["deposit_guard"] == "unsafe"  # the app's default
    assert history["money"]["total_change"] == 15 and history["money"]["deposits"] == 15


def test_a_request_is_sampled_after_its_answer_without_any_dashboard_open(client, every_request_samples, lab):
    deposit(client)
    deposit(client)
    assert history_of(lab).report()["series"]["acknowledged"] == [1, 2]  # nobody read /stats or the history


def test_at_most_one_sample_a_second(client):
    for _ in range(20):
        deposit(client)
        client.get("/stats")
    assert client.get("/dashboard/history").json["samples"] <= 2  # the first, and one more if a second went by


def test_it_keeps_only_the_newest_samples():
    history = History(capacity=5, interval_s=0)
    for n in range(1, 21):
        history.record(stats(acknowledged=n), now=1000.0 + n)
    kept = history.report()["series"]
    assert kept["acknowledged"] == [16, 17, 18, 19, 20] and kept["t"] == [1016.0, 1017.0, 1018.0, 1019.0, 1020.0]


def test_since_gives_only_what_came_after():
    history = History(interval_s=0)
    for n in range(1, 6):
        history.record(stats(acknowledged=n, guard="lock" if n < 4 else "unsafe"), now=1000.0 + n)
    newer = history.report(since=1003.0)
    assert newer["series"]["acknowledged"] == [4, 5] and [c["deposit_guard"] for c in newer["settings"]] == ["unsafe"]
    assert history.report()["samples"] == 5


def test_a_reset_starts_the_history_again(client, every_request_samples):
    for _ in range(3):
        deposit(client)
    before = client.get("/dashboard/history").json
    assert client.post("/admin/reset").status_code == 200
    after = client.get("/dashboard/history").json
    assert after["resets"] == before["resets"] + 1
    assert after["series"]["acknowledged"] == [0] and after["started_at"] > before["started_at"]


def test_counters_going_down_mean_a_reset_elsewhere():
    """Another worker (or a room's "reset all") reset the lab: this worker sees its counters drop."""
    history = History(interval_s=0)
    history.record(stats(acknowledged=50, admitted=7), now=1000.0)
    history.record(stats(acknowledged=60, admitted=7), now=1001.0)
    history.record(stats(acknowledged=2), now=1002.0)
    report = history.report()
    assert report["series"]["acknowledged"] == [2] and report["resets"] == 1 and report["started_at"] == 1002.0


@pytest.mark.parametrize("since", ["-1", "yesterday", "nan"])
def test_a_bad_since_is_a_problem_naming_it(client, since):
    response = client.get(f"/dashboard/history?since={since}")
    assert response.status_code == 422
    assert response.content_type == "application/problem+json" and "since" in response.get_data(as_text=True)


def test_each_app_has_its_own_history(make_app, every_request_samples):
    one, other = make_app(race_window_ms=0), make_app(race_window_ms=0)
    deposit(one.test_client())
    assert one.test_client().get("/dashboard/history").json["series"]["acknowledged"][-1] == 1
    assert other.test_client().get("/dashboard/history").json["series"]["acknowledged"] == [0]


@pytest.mark.parametrize(
    ("guard", "policy", "blamed"),
    [
        ("unsafe", "naive", "deposits"),
        ("semaphore", "ordered", "unexplained"),  # one permit: it excludes
        ("lock", "unsafe", "transfers"),
        ("unsafe", "unsafe", "either"),
        ("lock", "naive", "unexplained"),
    ],
)
def test_lost_money_is_blamed_as_the_verdict_blames_it(guard, policy, blamed):
    history = History(interval_s=0)
    history.record(stats(lost=30, total=70, expected=100, guard=guard, policy=policy), now=1000.0)
    money = history.report()["money"]
    assert money["lost_by"][blamed] == -30 and sum(money["lost_by"].values()) == -30
    assert money["off"] == -30 and money["in_flight"] == 0


def test_a_setting_seen_since_the_reset_still_counts_after_it_flipped_back():
    history = History(interval_s=0)
    history.record(stats(guard="unsafe"), now=1000.0)
    history.record(stats(lost=30, total=70, expected=100, guard="lock"), now=1001.0)
    assert history.report()["money"]["lost_by"]["deposits"] == -30


def test_unsafe_deposits_beside_naive_transfers_lose_money_the_deposits_are_blamed_for(make_app):
    """The Transfers panel's "total off by" in red, fixed: real threads race unsafe deposits against naive transfers;
    all the missing money is the deposits' lost updates, none is the transfers'."""
    app = make_app(deposit_guard="unsafe", transfer_policy="naive", race_window_ms=2)
    client = app.test_client()

    def deposits():
        for _ in range(15):
            deposit(client, "acc-01", 1)

    def transfers():
        for _ in range(5):
            client.post("/transfers", json={"from": "acc-01", "to": "acc-02", "amount": 1}).close()

    threads = [threading.Thread(target=deposits) for _ in range(6)] + [threading.Thread(target=transfers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    now = client.get("/stats").json
    lost = now["deposits"]["lost_updates"]
    assert lost > 0, "six threads of unsafe deposits on one account lost none"
    assert now["transfers"]["committed"] > 0 and now["transfers"]["policy"] == "naive"
    assert now["transfers"]["total"] - now["transfers"]["expected_total"] == -lost
    money = client.get("/dashboard/history").json["money"]
    assert money["lost_by"] == {"deposits": -lost, "transfers": 0, "either": 0, "unexplained": 0}
    assert money["deposits_could_lose"] == "deposit_guard unsafe" and money["transfers_could_lose"] is None


def test_in_a_room_the_sample_is_taken_of_the_requests_team(make_app, every_request_samples):
    """A room's routing leaves the request's team in the environ: its lab is the one sampled, not the app's own."""
    app, team = make_app(), make_app().extensions["bankapp"]
    default = app.extensions["bankapp"]
    every = EveryRequest(lambda environ, start_response: [b"{}"], default, app.extensions["bankapp.metrics"])
    answer = every({"REQUEST_METHOD": "GET", "PATH_INFO": "/stats", TEAM: SimpleNamespace(lab=team)}, None)
    assert list(answer) == [b"{}"]
    answer.close()  # the WSGI server's close, once the answer is sent
    assert history_of(team).report()["samples"] == 1 and history_of(default).report()["samples"] == 0
