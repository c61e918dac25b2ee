"""`bankapp serve` for real: gunicorn on a free loopback port, 16 client threads."""

import threading

import pytest
import requests

from ..harness import run_together
from ..live import live_server

pytestmark = pytest.mark.e2e

THREADS = 16
DEPOSITS_PER_THREAD = 25
AMOUNT = 1


def fire_deposits(server, account="acc-00"):
    """16 threads released together, each with its own connection."""
    seen = {"ok": 0, "amount": 0, "other": []}
    tally = threading.Lock()

    def client():
        with requests.Session() as session:
            for _ in range(DEPOSITS_PER_THREAD):
                response = session.post(f"{server.url}/accounts/{account}/deposit", json={"amount": AMOUNT}, timeout=10)
                with tally:
                    if response.status_code == 200:
                        seen["ok"] += 1
                        seen["amount"] += AMOUNT
                    else:
                        seen["other"].append(response.status_code)

    run_together([client] * THREADS, timeout=120)
    return seen


@pytest.fixture(scope="module")
def server():
    with live_server("--guard", "unsafe", "--race-window-ms", "2") as running:
        yield running


def check_stats_agree(server, seen):
    deposits = server.get("/stats").json()["deposits"]
    balance = server.get("/accounts/acc-00").json()["balance"]
    assert seen["other"] == []
    assert deposits["acknowledged"] == seen["ok"] == THREADS * DEPOSITS_PER_THREAD
    assert deposits["acknowledged_amount"] == seen["amount"]
    assert deposits["balance_change"] == balance - 100_000
    assert deposits["lost_updates"] == seen["amount"] - (balance - 100_000)
    return deposits


def test_unsafe_loses_updates_and_stats_count_them(server):
    server.configure(guard="unsafe")
    deposits = check_stats_agree(server, fire_deposits(server))
    assert deposits["lost_updates"] > 0
    assert deposits["per_account"]["acc-00"]["lost_updates"] == deposits["lost_updates"]


@pytest.mark.parametrize(("guard", "permits"), [("lock", 1), ("rlock", 1), ("semaphore", 1)])
def test_an_exclusive_guard_switched_on_live_loses_nothing(server, guard, permits):
    server.configure(deposit_guard=guard, deposit_permits=permits)
    deposits = check_stats_agree(server, fire_deposits(server))
    assert deposits["lost_updates"] == 0


def test_a_semaphore_of_four_loses_updates_again(server):
    server.configure(deposit_guard="semaphore", deposit_permits=4)
    assert check_stats_agree(server, fire_deposits(server))["lost_updates"] > 0


def test_batch_deposit_rlock_succeeds_and_lock_self_deadlocks(server):
    server.configure(deposit_guard="rlock", lock_timeout_ms=100)
    assert server.post("/accounts/acc-05/batch-deposit", json={"amounts": [1, 2]}).status_code == 200
    server.configure(deposit_guard="lock")
    response = server.post("/accounts/acc-05/batch-deposit", json={"amounts": [1, 2]})
    assert response.status_code == 503
    assert response.json()["type"].endswith("self-deadlock")
    assert server.get("/accounts/acc-05").json()["balance"] == 100_000
    server.configure(lock_timeout_ms=2000)


def test_threads_and_served_by_come_from_the_worker(server):
    response = server.get("/threads")
    body = response.json()
    pid, thread_name = response.headers["X-Served-By"].split("/", 1)
    assert int(pid) == body["pid"] != server.process.pid  # the worker, not the gunicorn master
    assert thread_name == body["current_thread"]["name"]
    assert body["active_count"] == len(body["threads"])


def test_sigterm_stops_the_server_cleanly():
    from ..live import stop

    with live_server() as running:
        process = running.process
        assert stop(process) == 0
