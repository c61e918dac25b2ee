"""The fleet in a hostile room: 4 workers on the postgres store, the database pulled out from under them.

Faults are injected on this test's own database only: its backends are
terminated (`pg_terminate_backend`), or the loopback relay between the
service and PostgreSQL (`pg.Plug`) is cut and restored. The machine's
PostgreSQL itself is never stopped: other tests use it.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from .live import live_server
from .pg import Plug, until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

FLEET = ("--store", "postgres", "--workers", "4", "--threads", "16")


def per_worker(server, path: str, workers: int = 4, timeout: float = 30) -> dict[str, dict]:
    """`path` as each of the `workers` workers answers it (new connections until each has answered 200)."""
    answers: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(answers) < workers and time.monotonic() < deadline:
        response = requests.get(server.url + path, timeout=10, headers={"Connection": "close"})
        if response.status_code == 503:  # a worker's pool still finding its dead connections after an outage
            continue
        assert response.status_code == 200, response.text
        answers[response.headers["X-Served-By"].split("/")[0]] = response.json()
    assert len(answers) == workers, f"only {len(answers)} workers answered {path} within {timeout} s"
    return answers


def loop(url: str, stop: threading.Event, statuses: list, path: str, body: dict) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            try:
                statuses.append(session.post(url + path, json=body, timeout=15).status_code)
            except requests.RequestException:
                statuses.append("cut")


def test_a_database_outage_mid_checkout_leaks_no_admission(databases):
    """Issue 19, item 1: 12 threads checking out through a semaphore of 4 while the database goes away
    twice (the relay cut) and its backends are killed once; at rest every worker has its 4 permits,
    nothing is in flight, and every admitted checkout is counted with its outcome."""
    url = databases.create()
    plug = Plug(("127.0.0.1", 5432))
    flags = (*FLEET, "--database-url", plug.url(url), "--checkout-guard", "semaphore", "--capacity", "4")
    flags += ("--admission-timeout-ms", "0", "--service-time-ms", "20", "--race-window-ms", "1")
    try:
        with live_server(*flags, startup_timeout=60) as server:
            stop, statuses = threading.Event(), []
            threads = [
                threading.Thread(
                    target=loop, args=(server.url, stop, statuses, "/checkout", {"sku": "widget", "quantity": 1})
                )
                for _ in range(12)
            ]
            for thread in threads:
                thread.start()
            try:
                until(lambda: statuses.count(200) >= 20, 30, "no checkout went through")
                for _ in range(2):
                    plug.pull()
                    time.sleep(1.0)  # checkouts meet the database gone at every step of theirs
                    plug.push()
                    until(lambda: statuses[-5:].count(200) >= 1, 30, "no checkout went through again")
                databases.terminate(url)
                until(lambda: statuses[-5:].count(200) >= 1, 30, "no checkout went through after the kill")
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
            assert 500 not in statuses, f"{statuses.count(500)} checkouts answered 500"
            assert any(status == 503 for status in statuses)  # the outage was felt: 503s, not 500s
            until(lambda: server.get("/healthz").status_code == 200, 30, "the store did not come back")

            for pid, stats in per_worker(server, "/stats").items():
                checkout = stats["checkout"]
                assert checkout["available_permits"] == 4, (pid, checkout)
                assert checkout["in_flight"] == 0 and checkout["waiting"] == 0, (pid, checkout)
                finished = checkout["completed"] + checkout["out_of_stock"] + checkout["failed"]
                assert checkout["admitted"] == finished, (pid, checkout)
            # and every worker admits again: checkouts one at a time, each on a new connection, all go through
            answered = set()
            for _ in range(40):
                response = requests.post(
                    server.url + "/checkout", json={"sku": "widget", "quantity": 1}, timeout=10,
                    headers={"Connection": "close"},
                )  # fmt: skip
                if response.status_code == 503 and response.json()["type"].endswith("store-unavailable"):
                    continue  # a dead connection found (and dropped) by its pool, not a permit refused
                assert response.status_code == 200, response.text
                answered.add(response.headers["X-Served-By"].split("/")[0])
            assert len(answered) >= 2, answered
    finally:
        plug.pull()
