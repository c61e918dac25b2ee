"""Transfers, the audit and /debug/locks through Flask's client, and every bad input."""

import threading

import pytest

from ..harness import held_by_another_thread

INITIAL = 100_000
TRANSFER_KEYS = {
    "policy",
    "committed",
    "deadlocks",
    "deadlock_victims",
    "lock_timeouts",
    "retries",
    "insufficient_funds",
    "in_flight",
    "peak_in_flight",
    "audits",
    "wrong_total_reads",
    "total",
    "expected_total",
    "total_conserved",
    "negative_balances",
}


def state(client):
    """What must not change when a transfer is refused."""
    stats = client.get("/stats").json
    return client.get("/accounts").json, stats["deposits"], stats["transfers"]


def test_a_transfer_answers_both_balances_and_the_policy(client):
    response = client.post("/transfers", json={"from": "acc-00", "to": "acc-01", "amount": 250})
    assert response.status_code == 200
    assert response.json == {
        "from": {"id": "acc-00", "balance": INITIAL - 250},
        "to": {"id": "acc-01", "balance": INITIAL + 250},
        "amount": 250,
        "policy": "naive",
        "retries": 0,
    }
    stats = client.get("/stats").json
    assert stats["transfers"]["committed"] == 1
    assert stats["deposits"]["lost_updates"] == 0
    assert stats["deposits"]["per_account"]["acc-00"]["balance_change"] == -250


@pytest.mark.parametrize("policy", ["unsafe", "naive", "ordered", "release-first", "backoff"])
def test_the_policy_switched_live_is_the_one_used(client, policy):
    assert client.patch("/admin/config", json={"transfer_policy": policy}).status_code == 200
    response = client.post("/transfers", json={"from": "acc-02", "to": "acc-03", "amount": 1})
    assert response.json["policy"] == policy
    assert client.get("/stats").json["transfers"]["policy"] == policy


def test_insufficient_funds_is_a_409_and_changes_nothing(client):
    before = state(client)
    response = client.post("/transfers", json={"from": "acc-00", "to": "acc-01", "amount": INITIAL + 1})
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:bankapp:problem:insufficient-funds"
    assert response.json["account"] == "acc-00"
    after = state(client)
    assert after[:2] == before[:2]
    assert after[2]["insufficient_funds"] == 1 and after[2]["committed"] == 0


BAD_TRANSFERS = [
    pytest.param({"to": "acc-01", "amount": 1}, 422, "from: Field required", id="missing-from"),
    pytest.param({"from": "acc-00", "amount": 1}, 422, "to: Field required", id="missing-to"),
    pytest.param({"from": "acc-00", "to": "acc-01"}, 422, "amount: Field required", id="missing-amount"),
    pytest.param({"from": "acc-00", "to": "acc-01", "amount": 0}, 422, "greater than 0", id="zero"),
    pytest.param({"from": "acc-00", "to": "acc-01", "amount": -5}, 422, "greater than 0", id="negative"),
    pytest.param({"from": "acc-00", "to": "acc-01", "amount": 1.5}, 422, "valid integer", id="fractional"),
    pytest.param({"from": "acc-00", "to": "acc-01", "amount": True}, 422, "valid integer", id="boolean"),
    pytest.param({"from": "acc-00", "to": "acc-01", "amount": "5"}, 422, "valid integer", id="string"),
    pytest.param({"from": "acc-00", "to": "acc-01", "amount": 10**30}, 422, "less than or equal", id="huge"),
    pytest.param({"from": 0, "to": "acc-01", "amount": 1}, 422, "from: Input should be a valid string", id="from-int"),
    pytest.param({"from": "acc-00", "to": "acc-01", "amount": 1, "memo": "x"}, 422, "memo: unknown", id="extra"),
    pytest.param({"source": "acc-00", "to": "acc-01", "amount": 1}, 422, "source: unknown field", id="py-name"),
    pytest.param(["acc-00", "acc-01", 1], 422, "expected a JSON object", id="not-an-object"),
    pytest.param({"from": "acc-00", "to": "acc-00", "amount": 1}, 422, "both acc-00", id="same-account"),
    pytest.param({"from": "acc-00", "to": "acc-99", "amount": 1}, 404, "acc-99", id="unknown-to"),
    pytest.param({"from": "acc-99", "to": "acc-00", "amount": 1}, 404, "acc-99", id="unknown-from"),
]


@pytest.mark.parametrize(("body", "status", "detail"), BAD_TRANSFERS)
def test_bad_transfer_is_a_problem_naming_what_is_wrong_and_changes_nothing(client, body, status, detail):
    before = state(client)
    response = client.post("/transfers", json=body)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert detail in response.json["detail"]
    assert state(client) == before


def test_malformed_json_and_wrong_content_type(client):
    before = state(client)
    assert client.post("/transfers", data='{"from": ', content_type="application/json").status_code == 400
    assert client.post("/transfers", data="{}", content_type="text/plain").status_code == 415
    assert client.post("/transfers").status_code == 422
    assert state(client) == before


def test_audit_reports_the_total_against_the_expected_total(client):
    client.post("/accounts/acc-05/deposit", json={"amount": 40})
    client.post("/transfers", json={"from": "acc-05", "to": "acc-06", "amount": 30})
    body = client.get("/audit").json
    assert body == {
        "total": 16 * INITIAL + 40,
        "expected_total": 16 * INITIAL + 40,
        "difference": 0,
        "negative_accounts": [],
        "consistent": True,
        "policy": "naive",
        "accounts": 16,
    }
    assert client.get("/stats").json["transfers"]["audits"] == 1


def test_stats_transfers_has_every_counter_and_reset_zeroes_them(client):
    client.post("/transfers", json={"from": "acc-00", "to": "acc-01", "amount": 5})
    client.get("/audit")
    transfers = client.get("/stats").json["transfers"]
    assert transfers.keys() == TRANSFER_KEYS
    assert transfers["committed"] == transfers["audits"] == 1
    assert client.post("/admin/reset").status_code == 200
    transfers = client.get("/stats").json["transfers"]
    assert transfers["committed"] == transfers["audits"] == transfers["deadlocks"] == 0
    assert transfers["total"] == 16 * INITIAL and transfers["total_conserved"]


def test_debug_locks_at_rest(client):
    assert client.get("/debug/locks").json == {
        "policy": "naive",
        "locks": [],
        "wait_for": [],
        "live_deadlocks": [],
        "deadlocks_detected": 0,
        "recent_deadlocks": [],
    }


def test_a_deadlock_victim_is_a_409_with_the_cycle_and_debug_locks_remembers_it(make_app):
    """Two opposing transfers, each made to hold its `from` lock until the other holds its own."""
    app = make_app(transfer_policy="naive", race_window_ms=0, deadlock_check_ms=20)
    lab = app.extensions["bankapp"]
    meeting = threading.Barrier(2, timeout=2)
    original_write = lab.store.write
    local = threading.local()

    def write_then_meet(account_id, balance):  # the debit of each transfer waits for the other's
        original_write(account_id, balance)
        if not getattr(local, "met", False):
            local.met = True
            meeting.wait()

    lab.store.write = write_then_meet
    responses = {}

    def send(name, source, target):
        responses[name] = app.test_client().post("/transfers", json={"from": source, "to": target, "amount": 10})

    threads = [
        threading.Thread(target=send, args=("a", "acc-00", "acc-01")),
        threading.Thread(target=send, args=("b", "acc-01", "acc-00")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    lab.store.write = original_write
    statuses = sorted(response.status_code for response in responses.values())
    assert statuses == [200, 409]
    problem = next(r for r in responses.values() if r.status_code == 409)
    assert problem.mimetype == "application/problem+json"
    body = problem.json
    assert body["type"] == "urn:bankapp:problem:deadlock"
    assert body["rolled_back"] is True
    assert body["accounts"] == ["acc-00", "acc-01"]
    assert len(body["cycle"]) == 2
    assert {step["waits_for"] for step in body["cycle"]} == {"acc-00", "acc-01"}
    assert sorted(h for step in body["cycle"] for h in step["holds"]) == ["acc-00", "acc-01"]
    assert len({step["ident"] for step in body["cycle"]}) == 2
    client = app.test_client()
    assert client.get("/audit").json["consistent"]
    debug = client.get("/debug/locks").json
    assert debug["deadlocks_detected"] == 1
    assert debug["recent_deadlocks"][0]["cycle"] == body["cycle"]
    transfers = client.get("/stats").json["transfers"]
    assert transfers["deadlocks"] == transfers["deadlock_victims"] == transfers["committed"] == 1


def test_lock_timeout_is_a_503_and_changes_nothing(make_app):
    app = make_app(transfer_policy="ordered", race_window_ms=0, lock_timeout_ms=50)
    client = app.test_client()
    before = client.get("/accounts").json
    with held_by_another_thread(app.extensions["bankapp"].locks["acc-01"]):
        response = client.post("/transfers", json={"from": "acc-00", "to": "acc-01", "amount": 10})
        debug = client.get("/debug/locks").json
    assert response.status_code == 503
    assert response.json["type"] == "urn:bankapp:problem:lock-timeout"
    assert response.json["resource"] == "acc-01"
    assert response.headers["Retry-After"]
    assert debug["locks"] == [{"account": "acc-01", "holder": debug["locks"][0]["holder"], "waiters": []}]
    assert client.get("/accounts").json == before
    assert client.get("/stats").json["transfers"]["lock_timeouts"] == 1


def test_openapi_names_the_field_from(client):
    schema = client.get("/openapi.json").json
    assert "/transfers" in schema["paths"]
    assert "/audit" in schema["paths"] and "/debug/locks" in schema["paths"]
    assert "from" in schema["components"]["schemas"]["TransferIn"]["properties"]
