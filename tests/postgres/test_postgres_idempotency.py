"""`Idempotency-Key` across the fleet: on the postgres store a retry is recognised whichever worker it reaches.

Two apps on one database stand for two workers (each its own lab, pool and
memory): a key used on one is replayed by the other, a key reused for
another request is refused by the other, and many copies of one request
sent at once to both apply once. Then the same with real gunicorn workers:
retries spread over the fleet by the kernel apply once.
"""

from __future__ import annotations

import threading

import pytest
import requests

from bankapp.postgres import prepare
from bankapp.settings import load
from bankapp.web import create_app, idempotency

from ..live import live_server
from ..pg import Plug, until

pytestmark = pytest.mark.postgres


def worker(url: str, **settings):
    """One worker's app (its own lab and pool) on the shared database, and a test client for it."""
    config = load({"store": "postgres", "database_url": url, "threads": 16, **settings}, environ={})
    app = create_app(prepare(config, set(settings)))
    return app.test_client()


def balance(client, account: str = "acc-00") -> int:
    return client.get(f"/accounts/{account}").get_json()["balance"]


@pytest.fixture
def two_workers(database_url):
    return worker(database_url, race_window_ms=0), worker(database_url)


def test_a_retry_on_another_worker_replays_the_first_answer(two_workers):
    one, two = two_workers
    before = balance(one)
    first = one.post("/accounts/acc-00/deposit", json={"amount": 7}, headers={"Idempotency-Key": "k-1"})
    retry = two.post("/accounts/acc-00/deposit", json={"amount": 7}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == retry.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    assert balance(two) == before + 7


def test_a_key_reused_for_another_request_is_refused_on_another_worker(two_workers):
    one, two = two_workers
    before = balance(one)
    first = one.post("/accounts/acc-00/deposit", json={"amount": 5}, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == 200
    reused = two.post("/accounts/acc-00/deposit", json={"amount": 500}, headers={"Idempotency-Key": "k-2"})
    assert reused.status_code == 422
    assert reused.get_json()["type"].endswith("idempotency-key-reused")
    assert balance(one) == before + 5


def test_a_refused_first_request_is_forgotten_by_the_fleet(two_workers):
    one, two = two_workers
    body = {"from": "acc-01", "to": "acc-02", "amount": balance(one, "acc-01") + 1}
    refused = one.post("/transfers", json=body, headers={"Idempotency-Key": "k-3"})
    assert refused.status_code == 409  # insufficient funds: nothing applied, nothing remembered
    assert one.post("/accounts/acc-01/deposit", json={"amount": 1}).status_code == 200
    retried = two.post("/transfers", json=body, headers={"Idempotency-Key": "k-3"})
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert balance(one, "acc-01") == 0


def test_copies_sent_at_once_to_two_workers_apply_once(database_url):
    # A race window of 100 ms keeps the first copy running while the others arrive: they must wait
    # for its answer (polling the database) and replay it, not run.
    one, two = worker(database_url, race_window_ms=100), worker(database_url)
    before = balance(one)
    start = threading.Barrier(8, timeout=10)
    answers, tally = [], threading.Lock()

    def send(client):
        start.wait()
        response = client.post("/accounts/acc-00/deposit", json={"amount": 3}, headers={"Idempotency-Key": "k-4"})
        with tally:
            answers.append(response)

    threads = [threading.Thread(target=send, args=((one, two)[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [response.status_code for response in answers] == [200] * 8
    assert sum("Idempotent-Replayed" not in response.headers for response in answers) == 1
    assert len({response.get_data() for response in answers}) == 1
    assert balance(one) == before + 3


@pytest.mark.e2e
def test_retries_spread_over_gunicorn_workers_apply_once(databases):
    url = databases.create()
    flags = ("--store", "postgres", "--workers", "2", "--threads", "8", "--database-url", url, "--race-window-ms", "0")
    with live_server(*flags, startup_timeout=40) as server:
        before = requests.get(f"{server.url}/accounts/acc-00", timeout=10).json()["balance"]
        served, answers = set(), []
        # Each retry on a new connection: the kernel hands it to either worker. Retry (bounded) until
        # both workers have answered this key, so the test fails if a worker applies it again.
        for _ in range(200):
            response = requests.post(
                f"{server.url}/accounts/acc-00/deposit",
                json={"amount": 11},
                headers={"Idempotency-Key": "retry-over-the-fleet", "Connection": "close"},
                timeout=10,
            )
            answers.append(response)
            served.add(response.headers["X-Served-By"].split("/")[0])
            if len(served) == 2 and len(answers) >= 10:
                break
        after = requests.get(f"{server.url}/accounts/acc-00", timeout=10).json()["balance"]
    assert len(served) == 2, "the kernel gave every connection to one worker"
    assert {response.status_code for response in answers} == {200}
    assert sum("Idempotent-Replayed" not in response.headers for response in answers) == 1
    assert after == before + 11


def through_a_plug(database_url: str, **settings):
    """A worker on the database through a `Plug`, pulled out the moment its first request writes the
    key's outcome: the database goes away between the operation and its answer."""
    plug = Plug(("127.0.0.1", 5432))
    config = load({"store": "postgres", "database_url": plug.url(database_url), "threads": 8, **settings}, environ={})
    app = create_app(prepare(config, set(settings)))
    shared = app.extensions[idempotency.EXTENSION].shared
    write = shared.complete

    def complete_with_the_plug_pulled(key, answer):
        plug.pull()
        shared.complete = write  # once
        write(key, answer)

    shared.complete = complete_with_the_plug_pulled
    return plug, app, app.test_client()


def test_a_refused_first_request_whose_forget_the_database_missed_is_forgotten_once_it_is_back(
    database_url, monkeypatch
):
    monkeypatch.setattr(idempotency, "WAIT_TIMEOUT", 2.0)  # a retry that finds the key still claimed says so soon
    plug, app, client = through_a_plug(database_url, race_window_ms=0)
    other = worker(database_url)
    try:
        body = {"amount": balance(other, "acc-03") + 1}
        refused = client.post("/accounts/acc-03/withdraw", json=body, headers={"Idempotency-Key": "k-5"})
        assert refused.status_code == 409, refused.get_json()  # its own answer, not the forget's 503
        assert refused.get_json()["type"].endswith("insufficient-funds")
        plug.push()
        until(lambda: app.extensions[idempotency.EXTENSION].shared.peek("k-5") is None, 20, "the key forgotten")
        assert other.post("/accounts/acc-03/deposit", json={"amount": 1}).status_code == 200
        retried = other.post("/accounts/acc-03/withdraw", json=body, headers={"Idempotency-Key": "k-5"})
        assert retried.status_code == 200, retried.get_json()  # runs: not stuck "in flight" for a day
        assert balance(other, "acc-03") == 0
    finally:
        plug.pull()
        app.extensions["bankapp"].close()


def test_an_applied_request_whose_answer_the_database_missed_says_so_and_is_replayed_once_it_is_back(database_url):
    plug, app, client = through_a_plug(database_url, race_window_ms=0)
    other = worker(database_url)
    try:
        before = balance(other)
        first = client.post("/accounts/acc-00/deposit", json={"amount": 9}, headers={"Idempotency-Key": "k-6"})
        assert first.status_code == 200, first.get_json()  # applied: a 503 would tell the client it was not
        plug.push()
        shared = app.extensions[idempotency.EXTENSION].shared
        until(lambda: (seen := shared.peek("k-6")) is not None and seen.answer is not None, 20, "the answer written")
        retry = other.post("/accounts/acc-00/deposit", json={"amount": 9}, headers={"Idempotency-Key": "k-6"})
        assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
        assert retry.get_json() == first.get_json()
        assert balance(other) == before + 9
    finally:
        plug.pull()
        app.extensions["bankapp"].close()


def test_an_expired_key_is_won_by_its_next_claim_in_one_statement(make_pg_lab):
    answers = make_pg_lab().answers
    assert answers.claim("k-7", "first", ttl=3600)
    answers.complete("k-7", (200, b"{}", []))
    assert not answers.claim("k-7", "second", ttl=3600)  # alive: the first request's
    with answers.db.connection() as conn:
        conn.execute("UPDATE bankapp_idempotency SET created_at = now() - interval '2 hours' WHERE key = 'k-7'")
    assert answers.claim("k-7", "second", ttl=3600)  # past its lifetime: the new request's, at once
    seen = answers.peek("k-7")
    assert seen.fingerprint == "second" and seen.answer is None
