"""Settings at runtime, reset, health, threads and stats over Flask's client."""

import os
import threading

import pytest


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
