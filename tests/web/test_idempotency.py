"""`Idempotency-Key`: a retry answers the first answer and applies nothing again."""

import threading
import time

import pytest

from bankapp.web.idempotency import MAX_KEY_LENGTH, IdempotencyStore, KeyReused

INITIAL = 100_000


def deposit(client, amount=100, key="k-1", account="acc-00", action="deposit"):
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(f"/accounts/{account}/{action}", json={"amount": amount}, headers=headers)


def acknowledged(client):
    return client.get("/stats").json["deposits"]["acknowledged"]


@pytest.mark.parametrize("action", ["deposit", "withdraw"])
def test_a_retry_answers_the_first_answer_and_applies_nothing_again(client, action):
    first = deposit(client, action=action)
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    balance = client.get("/accounts/acc-00").json["balance"]
    for _ in range(3):
        again = deposit(client, action=action)
        assert again.status_code == first.status_code
        assert again.get_data() == first.get_data()
        assert again.mimetype == first.mimetype
        assert again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/accounts/acc-00").json["balance"] == balance


def test_the_same_body_spelled_differently_is_the_same_request(client):
    deposit(client)
    again = client.post(
        "/accounts/acc-00/deposit",
        data='{ "amount" :100 }',
        content_type="application/json",
        headers={"Idempotency-Key": "k-1"},
    )
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    ("amount", "account", "action"),
    [(101, "acc-00", "deposit"), (100, "acc-01", "deposit"), (100, "acc-00", "withdraw")],
    ids=["other-amount", "other-account", "other-action"],
)
def test_the_same_key_for_another_request_is_a_422_and_changes_nothing(client, amount, account, action):
    deposit(client)
    before = client.get("/accounts").json
    response = deposit(client, amount=amount, account=account, action=action)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "Idempotency-Key" in response.json["detail"]
    assert client.get("/accounts").json == before


@pytest.mark.parametrize("key", ["", "   ", "x" * (MAX_KEY_LENGTH + 1)], ids=["empty", "blank", "too-long"])
def test_a_bad_key_is_a_400_and_changes_nothing(client, key):
    response = deposit(client, key=key)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert "Idempotency-Key" in response.json["detail"]
    assert client.get("/accounts/acc-00").json["balance"] == INITIAL


def test_a_key_of_the_longest_length_is_fine(client):
    assert deposit(client, key="x" * MAX_KEY_LENGTH).status_code == 200


def test_without_a_key_every_request_applies(client):
    deposit(client, key=None)
    deposit(client, key=None)
    assert client.get("/accounts/acc-00").json["balance"] == INITIAL + 200


def test_different_keys_apply_separately(client):
    deposit(client, key="a")
    deposit(client, key="b")
    assert acknowledged(client) == 2


def test_an_error_answer_is_not_remembered_so_a_retry_runs_again(client):
    """409 insufficient funds, then money arrives: the retry with the same key succeeds."""
    refused = deposit(client, amount=INITIAL + 50, action="withdraw", key="w")
    assert refused.status_code == 409
    deposit(client, amount=50, key=None)
    retried = deposit(client, amount=INITIAL + 50, action="withdraw", key="w")
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert retried.json["balance"] == 0


def test_a_lock_timeout_is_retryable_with_the_same_key(make_app):
    """A 503 is the server's trouble, not the request's: the key stays free."""
    app = make_app(deposit_guard="lock", race_window_ms=0, lock_timeout_ms=20)
    client = app.test_client()
    guard = app.extensions["bankapp"].bank.guard_for("acc-00", app.extensions["bankapp"].config())
    holder_has_it, release = threading.Event(), threading.Event()

    def hold_the_lock():
        guard.acquire()
        holder_has_it.set()
        release.wait(10)
        guard.release()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    holder_has_it.wait(5)
    try:
        assert deposit(client, key="t").status_code == 503
    finally:
        release.set()
        holder.join(5)
    retried = deposit(client, key="t")
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert acknowledged(client) == 1


def test_a_refused_body_does_not_take_the_key(client):
    assert (
        client.post("/accounts/acc-00/deposit", json={"amount": 0}, headers={"Idempotency-Key": "z"}).status_code == 422
    )
    assert deposit(client, key="z").status_code == 200


@pytest.mark.parametrize("guard", ["unsafe", "lock"])
def test_concurrent_retries_apply_once_and_all_get_the_first_answer(make_app, guard):
    """Real threads released together with one key: exactly one deposit runs
    (its race window keeps it in flight), the others wait and replay it."""
    app = make_app(deposit_guard=guard, race_window_ms=100)
    threads = 12
    start = threading.Barrier(threads, timeout=10)
    answers = []
    tally = threading.Lock()

    def retry():
        client = app.test_client()
        start.wait()
        response = deposit(client, key="same")
        with tally:
            answers.append((response.status_code, response.get_data(), response.headers.get("Idempotent-Replayed")))

    workers = [threading.Thread(target=retry) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    client = app.test_client()
    assert len(answers) == threads
    assert {(status, body) for status, body, _ in answers} == {(200, answers[0][1])}
    assert sorted(replayed or "" for _, _, replayed in answers) == [""] + ["true"] * (threads - 1)
    assert client.get("/accounts/acc-00").json["balance"] == INITIAL + 100
    assert acknowledged(client) == 1


def test_concurrent_retries_after_a_failure_run_again_one_at_a_time(make_app):
    """The first run fails (insufficient funds): waiters do not replay a
    failure, they run again, and the key then holds the first success."""
    app = make_app(race_window_ms=50)
    store = app.extensions["bankapp.idempotency"]
    lab = app.extensions["bankapp"]
    calls = []
    start = threading.Barrier(6, timeout=10)

    def call():
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.2)  # the others arrive meanwhile and wait
            raise RuntimeError("the first run fails")
        return {"id": "acc-00", "balance": lab.bank.deposit("acc-00", 5)}

    from bankapp.web.idempotency import run_once

    results, errors = [], []

    def retry():
        start.wait()
        with app.test_request_context("/accounts/acc-00/deposit", method="POST"):
            try:
                results.append(run_once(store, "k", "print", call).get_json())
            except RuntimeError as error:
                errors.append(error)

    workers = [threading.Thread(target=retry) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(errors) == 1
    assert len(calls) == 2  # the failure, then one success that the other four replay
    assert results == [{"id": "acc-00", "balance": INITIAL + 5}] * 5


def test_the_store_is_bounded_by_count_oldest_first():
    store = IdempotencyStore(max_keys=3)
    for key in "abcd":
        store.complete(key, store.claim(key, "p")[0], _answer())
    assert len(store) == 3
    assert store.claim("a", "p")[1] is True  # forgotten: runs again
    assert store.claim("d", "p")[1] is False


def test_the_store_forgets_keys_after_their_ttl():
    now = [0.0]
    store = IdempotencyStore(max_keys=10, ttl=60, clock=lambda: now[0])
    store.complete("a", store.claim("a", "p")[0], _answer())
    now[0] = 59
    assert store.claim("a", "p")[1] is False
    now[0] = 60
    assert store.claim("a", "p")[1] is True


def test_the_store_refuses_a_key_for_another_fingerprint():
    store = IdempotencyStore()
    store.claim("a", "p")
    with pytest.raises(KeyReused):
        store.claim("a", "q")


def test_ten_thousand_keys_by_default(client):
    store = client.application.extensions["bankapp.idempotency"]
    assert store.max_keys == 10_000


def _answer():
    from bankapp.web.idempotency import Answer

    return Answer(200, b"{}", [("Content-Type", "application/json")])
