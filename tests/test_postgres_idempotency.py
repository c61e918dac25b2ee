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
from bankapp.web import create_app

from .live import live_server

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
