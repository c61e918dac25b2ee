"""`POST /admin/interleave` over Flask's client: the replay's JSON, a bank left untouched, refusals as problems,
admin only, one replay at a time, and a schedule nobody can finish answered in time."""

import threading
import time

import pytest

from bankapp.interleave import replay
from bankapp.interleave import replay as replay_module

replay_lock = replay_module.__globals__["_one_at_a_time"]


def post(client, **body):
    return client.post("/admin/interleave", json=body)


def test_the_answer_is_the_replay_itself(client, lab):
    response = post(client, scenario="deposit", guard="unsafe", schedule="a.read b.read a.write b.write")
    assert response.status_code == 200
    assert response.json == replay(lab.config(), "deposit", "unsafe", "a.read b.read a.write b.write")
    assert response.json["final"]["lost_updates"] == 10
    assert response.json["findings"][0].startswith("10 cents lost")


def test_a_replay_touches_neither_the_balances_nor_the_counters_of_the_bank(client):
    client.post("/accounts/acc-00/deposit", json={"amount": 7})
    before = client.get("/stats").json
    balances = client.get("/accounts").json
    for scenario, guard in [("deposit", "unsafe"), ("withdraw", "unsafe"), ("transfer", "naive"), ("audit", "unsafe")]:
        assert post(client, scenario=scenario, guard=guard).status_code == 200
    after = client.get("/stats").json
    assert client.get("/accounts").json == balances
    for concern in ("deposits", "transfers", "operations"):
        assert after[concern] == before[concern], concern
    assert client.get("/debug/locks").json["deadlocks_detected"] == 0


def test_without_guard_or_schedule_it_runs_the_scenarios_own_under_the_guard_in_force(client):
    client.patch("/admin/config", json={"transfer_policy": "release-first"})
    body = post(client, scenario="audit").json
    assert body["guard"] == "release-first" and body["setting"] == "transfer_policy"
    assert body["schedule"] == "a.read a.read a.write b.read a.read a.write a.read"
    assert body["answers"][1]["result"]["difference"] == -5


@pytest.mark.parametrize(
    ("body", "step", "says"),
    [
        ({"scenario": "deposit", "schedule": "a.read b.read a.write b.jump"}, "b.jump", "thread b has no step jump"),
        ({"scenario": "deposit", "schedule": "a.read b.read a.write c.write"}, "b.write", "the schedule does not"),
        ({"scenario": "withdraw", "schedule": "a.read b.read a.write b.write"}, "a.read", "thread a reads twice"),
        ({"scenario": "deposit", "schedule": "a.read b.read a.write b.write b.write"}, "b.write", "named twice"),
        ({"scenario": "deposit", "schedule": ""}, None, "the schedule is empty"),
    ],
)
def test_a_bad_schedule_is_a_422_problem_naming_the_step(client, body, step, says):
    response = client.post("/admin/interleave", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:bankapp:problem:invalid-schedule"
    assert says in response.json["detail"]
    assert response.json["step"] == step or (step and response.json["step"].startswith(step))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scenario": "juggle"}, "scenario"),
        ({"scenario": "transfer", "guard": "backoff"}, "guard"),
        ({"scenario": "deposit", "guard": "naive"}, "guard"),
        ({"scenario": "deposit", "threads": 3}, "threads"),
        ({"scenario": "deposit", "schedule": 7}, "schedule"),
        ({"guard": "lock"}, "scenario"),
    ],
)
def test_an_unknown_scenario_guard_or_field_is_a_422_naming_it(client, body, field):
    response = client.post("/admin/interleave", json=body)
    assert response.status_code == 422, response.json
    assert response.json["detail"].startswith(field)
    assert [error["field"] for error in response.json["errors"]] == [field]


def test_only_loopback_or_the_token_may_replay(make_app):
    open_app = make_app(race_window_ms=0).test_client()
    body = {"scenario": "deposit"}
    far = open_app.post("/admin/interleave", json=body, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert far.status_code == 403 and far.json["type"] == "urn:bankapp:problem:admin-loopback-only"
    locked = make_app(race_window_ms=0, admin_token="s3cret").test_client()
    assert locked.post("/admin/interleave", json=body).status_code == 401
    allowed = locked.post("/admin/interleave", json=body, headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == 200


def test_a_second_replay_while_one_runs_is_a_503_with_retry_after(client):
    with replay_lock:  # stands for a replay in flight in another request
        response = post(client, scenario="deposit")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json["type"] == "urn:bankapp:problem:replay-busy"
    assert post(client, scenario="deposit").status_code == 200  # and once it has ended, the next one runs


def test_replays_from_two_requests_at_once_both_answer(make_app):
    """One runs, the other is told to retry: neither waits on the other, neither fails."""
    app = make_app(race_window_ms=0, lock_timeout_ms=300)
    statuses = []

    def ask():
        statuses.append(app.test_client().post("/admin/interleave", json={"scenario": "batch", "guard": "lock"}))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(response.status_code for response in statuses) in ([200, 200], [200, 503])


def test_a_deadlock_nobody_may_give_up_is_answered_in_time(client):
    client.patch("/admin/config", json={"lock_timeout_ms": "none", "transfer_policy": "naive"})
    started = time.monotonic()
    response = post(client, scenario="transfer")
    assert time.monotonic() - started < 5
    assert response.status_code == 200
    events = [event["event"] for event in response.json["events"]]
    assert "stuck" in events and "broken" in events
    assert response.json["settings"]["lock_timeout_ms"] == "none"
