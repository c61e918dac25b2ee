"""Every account endpoint through Flask's client, and every bad input."""

import pytest

INITIAL = 100_000


REFUSAL_COUNTERS = {"rejected", "lock_timeouts", "self_deadlocks"}


def state(client):
    """What must not change when a request is refused (refusals are counted, apart)."""
    deposits = client.get("/stats").json["deposits"]
    return client.get("/accounts").json, {k: v for k, v in deposits.items() if k not in REFUSAL_COUNTERS}


def test_accounts_lists_sixteen_with_their_total(client):
    body = client.get("/accounts").json
    assert [a["id"] for a in body["accounts"]] == [f"acc-{i:02d}" for i in range(16)]
    assert body["total"] == 16 * INITIAL


def test_one_account(client):
    assert client.get("/accounts/acc-07").json == {"id": "acc-07", "balance": INITIAL}


def test_unknown_account_is_a_404_problem(client):
    response = client.get("/accounts/acc-16")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert "acc-16" in response.json["detail"]


def test_deposit_answers_the_new_balance_and_counts_it(client):
    response = client.post("/accounts/acc-01/deposit", json={"amount": 250})
    assert response.status_code == 200
    assert response.json == {"id": "acc-01", "balance": INITIAL + 250}
    deposits = client.get("/stats").json["deposits"]
    assert deposits["acknowledged"] == 1
    assert deposits["acknowledged_amount"] == 250
    assert deposits["lost_updates"] == 0
    assert deposits["per_account"]["acc-01"]["balance_change"] == 250


def test_a_whole_number_written_with_a_point_is_an_integer(client):
    """JSON Schema's `integer` includes 250.0: the document promises it, so it is accepted."""
    assert client.post("/accounts/acc-01/deposit", json={"amount": 250.0}).json["balance"] == INITIAL + 250


def test_withdraw_and_insufficient_funds(client):
    assert client.post("/accounts/acc-02/withdraw", json={"amount": 1000}).json["balance"] == INITIAL - 1000
    before = state(client)
    response = client.post("/accounts/acc-02/withdraw", json={"amount": INITIAL})
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.json["type"].endswith("insufficient-funds")
    assert response.json["balance"] == INITIAL - 1000
    assert state(client) == before
    assert client.get("/stats").json["deposits"]["rejected"] == {"insufficient_funds": 1}


def test_batch_deposit_under_rlock(make_app):
    client = make_app(deposit_guard="rlock", race_window_ms=0).test_client()
    response = client.post("/accounts/acc-04/batch-deposit", json={"amounts": [10, 20, 30]})
    assert response.status_code == 200
    assert response.json["balance"] == INITIAL + 60
    assert client.get("/stats").json["deposits"]["acknowledged"] == 3


@pytest.mark.parametrize("guard", ["lock", "semaphore"])
def test_batch_deposit_self_deadlock_is_a_503_naming_it(make_app, guard):
    client = make_app(deposit_guard=guard, race_window_ms=0, lock_timeout_ms=50).test_client()
    before = state(client)
    response = client.post("/accounts/acc-04/batch-deposit", json={"amounts": [10, 20]})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json["type"].endswith("self-deadlock")
    assert "already holds the non-reentrant" in response.json["detail"]
    assert response.json["resource"] == "acc-04"
    assert state(client) == before
    assert client.get("/stats").json["deposits"]["self_deadlocks"] == 1


BAD_AMOUNTS = [
    pytest.param({}, "amount: Field required", id="missing"),
    pytest.param({"amount": 0}, "amount: Input should be greater than 0", id="zero"),
    pytest.param({"amount": -5}, "amount: Input should be greater than 0", id="negative"),
    pytest.param({"amount": 1.5}, "amount: Input should be a valid integer", id="fractional"),
    pytest.param({"amount": True}, "amount: Input should be a valid integer", id="boolean"),
    pytest.param({"amount": "100"}, "amount: Input should be a valid integer", id="string"),
    pytest.param({"amount": None}, "amount: Input should be a valid integer", id="null"),
    pytest.param({"amount": 10**30}, "amount: Input should be less than or equal to", id="huge"),
    pytest.param({"amount": 5, "extra": 1}, "extra: unknown field", id="unknown-field"),
    pytest.param([5], "body: expected a JSON object", id="not-an-object"),
]


@pytest.mark.parametrize("action", ["deposit", "withdraw"])
@pytest.mark.parametrize(("body", "detail"), BAD_AMOUNTS)
def test_bad_amount_is_a_422_problem_naming_the_field_and_changes_nothing(client, action, body, detail):
    before = state(client)
    response = client.post(f"/accounts/acc-00/{action}", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert detail in response.json["detail"]
    assert {"type", "title", "status", "detail"} <= response.json.keys()
    assert state(client) == before


BAD_BATCHES = [
    pytest.param({}, "amounts: Field required", id="missing"),
    pytest.param({"amounts": []}, "amounts: List should have at least 1 item", id="empty"),
    pytest.param({"amounts": 5}, "amounts: Input should be a valid list", id="not-a-list"),
    pytest.param({"amounts": [5, 0]}, "amounts.1: Input should be greater than 0", id="zero-element"),
    pytest.param({"amounts": [5, 2.5]}, "amounts.1: Input should be a valid integer", id="fractional-element"),
    pytest.param({"amounts": [True]}, "amounts.0: Input should be a valid integer", id="boolean-element"),
    pytest.param({"amounts": [1] * 1001}, "amounts: List should have at most 1000 items", id="too-long"),
]


@pytest.mark.parametrize(("body", "detail"), BAD_BATCHES)
def test_bad_batch_is_a_422_problem_and_changes_nothing(make_app, body, detail):
    client = make_app(deposit_guard="rlock", race_window_ms=0).test_client()
    before = state(client)
    response = client.post("/accounts/acc-00/batch-deposit", json=body)
    assert response.status_code == 422
    assert detail in response.json["detail"]
    assert state(client) == before


@pytest.mark.parametrize("action", ["deposit", "withdraw", "batch-deposit"])
def test_unknown_account_on_every_write_is_a_404_and_changes_nothing(client, action):
    before = state(client)
    body = {"amounts": [1]} if action == "batch-deposit" else {"amount": 1}
    response = client.post(f"/accounts/acc-99/{action}", json=body)
    assert response.status_code == 404
    assert response.json["account"] == "acc-99"
    assert state(client) == before


@pytest.mark.parametrize("action", ["deposit", "withdraw", "batch-deposit"])
def test_malformed_json_is_a_400_problem(client, action):
    before = state(client)
    response = client.post(f"/accounts/acc-00/{action}", data='{"amount": ', content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert "not valid JSON" in response.json["detail"]
    assert state(client) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_a_415_problem(client, content_type):
    before = state(client)
    response = client.post("/accounts/acc-00/deposit", data='{"amount": 5}', content_type=content_type)
    assert response.status_code == 415
    assert content_type in response.json["detail"]
    assert state(client) == before


def test_empty_body_is_a_422_problem(client):
    response = client.post("/accounts/acc-00/deposit")
    assert response.status_code == 422
    assert response.json["detail"] == "body: expected a JSON object"


def test_oversized_body_is_a_413_problem(client):
    response = client.post(
        "/accounts/acc-00/deposit", data=b"[" + b"1," * 600_000 + b"1]", content_type="application/json"
    )
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


def test_unknown_path_and_method_are_problems_not_html(client):
    assert client.get("/nowhere").mimetype == "application/problem+json"
    response = client.delete("/accounts/acc-00")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


def test_every_response_says_who_served_it(client):
    import os
    import threading

    for response in (client.get("/healthz"), client.get("/nowhere"), client.post("/accounts/acc-00/deposit")):
        assert response.headers["X-Served-By"] == f"{os.getpid()}/{threading.current_thread().name}"


def test_each_thread_is_named_as_itself_once_another_has_served(client):
    """X-Served-By is kept per thread after its first request: a second thread never gets the first's name."""
    import threading

    client.get("/healthz")
    served = {}
    for name in ("server-a", "server-b"):
        thread = threading.Thread(target=lambda n=name: served.update({n: client.get("/healthz")}), name=name)
        thread.start()
        thread.join(10)
    assert [served[name].headers["X-Served-By"].split("/")[1] for name in ("server-a", "server-b")] == [
        "server-a",
        "server-b",
    ]


def test_json_null_is_valid_json_but_not_an_object(client):
    response = client.post("/accounts/acc-00/deposit", data="null", content_type="application/json")
    assert response.status_code == 422
    assert response.json["detail"] == "body: expected a JSON object, got null"
