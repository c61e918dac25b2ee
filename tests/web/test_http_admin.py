"""Settings at runtime, reset, health, threads and stats over Flask's client."""

import os
import threading

import pytest

from ..harness import held_by_another_thread, wait_until


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok", "store": "memory"}


def test_threads_reports_what_threading_says(client):
    body = client.get("/threads").json
    assert body["pid"] == os.getpid()
    assert body["active_count"] == len(body["threads"]) >= 1
    assert body["current_thread"]["name"] == threading.current_thread().name
    assert body["current_thread"]["ident"] == threading.get_ident()
    names = {t["name"] for t in body["threads"]}
    assert "MainThread" in names
    assert all(set(t) == {"name", "ident", "native_id", "daemon", "alive"} for t in body["threads"])


def test_config_shows_the_defaults_of_the_spec(client):
    config = client.get("/admin/config").json
    assert config["deposit_guard"] == "unsafe"
    assert config["checkout_guard"] == "unsafe"
    assert config["guard"] == "unsafe"
    assert config["deposit_permits"] == 1
    assert config["lock_timeout_ms"] == 2000
    assert config["threads"] == 32
    assert config["workers"] == 1
    assert config["host"] == "127.0.0.1"


def test_patch_guard_sets_both_guards_and_stats_show_it(client):
    response = client.patch("/admin/config", json={"guard": "lock"})
    assert response.status_code == 200
    assert response.json["deposit_guard"] == response.json["checkout_guard"] == "lock"
    assert client.get("/stats").json["settings"]["deposit_guard"] == "lock"


def test_patch_lock_timeout_none_waits_forever(client):
    assert client.patch("/admin/config", json={"lock_timeout_ms": "none"}).json["lock_timeout_ms"] == "none"
    assert client.patch("/admin/config", json={"lock_timeout_ms": None}).json["lock_timeout_ms"] == "none"
    assert client.patch("/admin/config", json={"lock_timeout_ms": 250}).json["lock_timeout_ms"] == 250


BAD_PATCHES = [
    pytest.param({"deposit_guard": "mutex"}, "deposit_guard: Input should be", id="unknown-guard"),
    pytest.param({"guard": "mutex"}, "guard: Input should be", id="unknown-guard-shorthand"),
    pytest.param({"color": "red"}, "color: unknown setting", id="unknown-setting"),
    pytest.param({"deposit_permits": 0}, "deposit_permits: Input should be greater than or equal to 1", id="zero"),
    pytest.param({"deposit_permits": "4"}, "deposit_permits: Input should be a valid integer", id="string"),
    pytest.param({"deposit_permits": True}, "deposit_permits: Input should be a valid integer", id="boolean"),
    pytest.param({"race_window_ms": -1}, "race_window_ms: Input should be greater than or equal to 0", id="negative"),
    pytest.param({"lock_timeout_ms": "soon"}, "lock_timeout_ms", id="bad-timeout"),
    pytest.param({"threads": 8}, "threads: can only be set at start", id="startup-only"),
    pytest.param({"workers": 2}, "workers: can only be set at start", id="workers"),
    pytest.param({"admin_token": "x"}, "admin_token: can only be set at start", id="token"),
    pytest.param(["lock"], "JSON object", id="not-an-object"),
]


@pytest.mark.parametrize(("body", "detail"), BAD_PATCHES)
def test_bad_patch_is_a_422_problem_naming_the_setting_and_changes_nothing(client, body, detail):
    before = client.get("/admin/config").json
    response = client.patch("/admin/config", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert detail in response.json["detail"]
    assert client.get("/admin/config").json == before


def test_patch_with_malformed_json_is_a_400(client):
    response = client.patch("/admin/config", data="{guard", content_type="application/json")
    assert response.status_code == 400


def test_reset_restores_balances_and_zeroes_counters_but_keeps_settings(client):
    client.patch("/admin/config", json={"deposit_guard": "lock"})
    client.post("/accounts/acc-00/deposit", json={"amount": 77})
    response = client.post("/admin/reset")
    assert response.status_code == 200
    assert client.get("/accounts/acc-00").json["balance"] == 100_000
    deposits = client.get("/stats").json["deposits"]
    assert deposits["acknowledged"] == 0
    assert deposits["acknowledged_amount"] == 0
    assert client.get("/admin/config").json["deposit_guard"] == "lock"


def test_each_app_starts_fresh(make_app):
    first = make_app(race_window_ms=0).test_client()
    first.post("/accounts/acc-00/deposit", json={"amount": 5})
    first.patch("/admin/config", json={"guard": "lock"})
    second = make_app(race_window_ms=0).test_client()
    assert second.get("/accounts/acc-00").json["balance"] == 100_000
    assert second.get("/admin/config").json["deposit_guard"] == "unsafe"


# Stuck locks: the operator's way out, the cap, a reset that cannot drain


def in_thread(job):
    thread = threading.Thread(target=job)
    thread.start()
    return thread


def test_break_deadlocks_with_nothing_stuck_breaks_nothing(client):
    response = client.post("/admin/break-deadlocks")
    assert response.status_code == 200
    assert response.json == {"deadlocks_broken": []}
    assert client.post("/admin/reset").json["deadlocks_broken"] == []


def test_break_deadlocks_is_in_the_contract_as_an_admin_operation(client):
    operation = client.get("/openapi.json").json["paths"]["/admin/break-deadlocks"]["post"]
    assert operation["security"] == [{"adminToken": []}, {}]
    assert {"200", "401", "403"} <= operation["responses"].keys()
    assert "pg_terminate_backend" in operation["description"] + operation.get("summary", "")


def test_break_deadlocks_frees_a_batch_that_waits_for_itself_forever(make_app):
    app = make_app(race_window_ms=0, deposit_guard="lock", lock_timeout_ms="none")
    client, lab = app.test_client(), app.extensions["bankapp"]
    answers = []
    batch = in_thread(
        lambda: answers.append(app.test_client().post("/accounts/acc-00/batch-deposit", json={"amounts": [1, 2]}))
    )
    guard = lab.bank.guard_for("acc-00", lab.config())
    wait_until(lambda: guard.waiting())
    broken = client.post("/admin/break-deadlocks").json["deadlocks_broken"]
    batch.join(5)
    [answer] = answers
    assert answer.status_code == 409 and answer.mimetype == "application/problem+json"
    assert answer.json["type"] == "urn:bankapp:problem:deadlock" and answer.json["rolled_back"] is True
    assert answer.json["deadlock_id"] == broken[0]["id"] and broken[0]["broken_by"] == "operator"
    assert client.get("/accounts/acc-00").json["balance"] == 100_000


def test_over_the_cap_a_deposit_is_a_503_problem_naming_the_cap(make_app):
    app = make_app(race_window_ms=0, threads=4, deposit_guard="lock", lock_timeout_ms=30_000)
    client, lab = app.test_client(), app.extensions["bankapp"]
    with held_by_another_thread(lab.locks["acc-00"]):
        waiting = [in_thread(lambda: lab.bank.deposit("acc-00", 5)) for _ in range(2)]
        wait_until(lambda: lab.stats()["operations"]["in_flight"] == 2)
        response = client.post("/accounts/acc-01/deposit", json={"amount": 5})
        assert client.get("/healthz").status_code == 200
    for thread in waiting:
        thread.join(10)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json["type"] == "urn:bankapp:problem:server-busy"
    assert (response.json["limit"], response.json["in_flight"], response.json["operation"]) == (2, 2, "deposit")
    assert "at most 2 requests" in response.json["detail"]
    assert client.get("/accounts/acc-01").json["balance"] == 100_000


def test_a_reset_that_cannot_drain_is_a_503_problem_naming_what_blocks_it(make_app):
    app = make_app(race_window_ms=0, checkout_guard="lock", service_time_ms=2000)
    client, lab = app.test_client(), app.extensions["bankapp"]
    lab.gate.reset_wait = 0.3
    client.post("/accounts/acc-00/deposit", json={"amount": 5})
    checkout = in_thread(lambda: lab.shop.checkout("widget", 1))
    wait_until(lambda: lab.shop.report()["gateway_in_use"] == 1)
    response = client.post("/admin/reset")
    checkout.join(10)
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:bankapp:problem:reset-blocked"
    [blocking] = response.json["blocking"]
    assert blocking["operation"] == "checkout" and blocking["holds"] == ["lock guard of checkout"]
    assert "changed nothing" in response.json["detail"]
    assert client.get("/accounts/acc-00").json["balance"] == 100_005
