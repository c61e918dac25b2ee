"""Deposits and transfers on the same two accounts against a real gunicorn, and a real Locust run.

Under an excluding deposit guard and a locking transfer policy, a deposit and
a transfer share the account's lock, so nothing acknowledged is lost and every
audit, during the run and at rest, sees the expected total.
"""

import threading
from functools import partial

import pytest
import requests

from ..harness import Background
from ..live import live_server
from .test_e2e_locust import run_locust

pytestmark = pytest.mark.e2e

INITIAL = 100_000
TOTAL = 16 * INITIAL
ACCOUNTS = ("acc-00", "acc-01")
CLIENTS = 6  # of each kind
ROUNDS = 25


@pytest.fixture(scope="module")
def server():
    flags = ("--deposit-guard", "lock", "--transfer-policy", "ordered", "--race-window-ms", "2")
    with live_server(*flags) as running:
        yield running


def deposits_and_transfers(server):
    """Depositors and transferrers (both directions) on acc-00 and acc-01, all at once, with audits meanwhile."""
    start = threading.Barrier(2 * CLIENTS + 1, timeout=10)
    statuses, audits, tally, done = [], [], threading.Lock(), threading.Event()

    def depositor(index):
        with requests.Session() as session:
            start.wait()
            for round_ in range(ROUNDS):
                account = ACCOUNTS[(index + round_) % 2]
                response = session.post(f"{server.url}/accounts/{account}/deposit", json={"amount": 3}, timeout=30)
                with tally:
                    statuses.append(("deposit", response.status_code))

    def transferrer(index):
        with requests.Session() as session:
            start.wait()
            for round_ in range(ROUNDS):
                source, target = ACCOUNTS if (index + round_) % 2 else ACCOUNTS[::-1]
                body = {"from": source, "to": target, "amount": 7}
                response = session.post(f"{server.url}/transfers", json=body, timeout=30)
                with tally:
                    statuses.append(("transfer", response.status_code))

    def auditor():
        with requests.Session() as session:
            start.wait()
            while not done.wait(0.01):
                audits.append(session.get(f"{server.url}/audit", timeout=30).json())

    clients, watcher = Background(), Background()
    for i in range(CLIENTS):
        clients.start(f"depositor-{i}", partial(depositor, i))
        clients.start(f"transferrer-{i}", partial(transferrer, i))
    watcher.start("auditor", auditor)
    try:
        clients.join(120)
    finally:
        done.set()
        watcher.join(30)
    return statuses, audits


@pytest.mark.parametrize(
    ("settings", "loses"),
    [({"deposit_guard": "lock"}, False), ({"deposit_guard": "semaphore", "deposit_permits": 4}, True)],
    ids=["lock", "semaphore-4"],
)
def test_deposits_and_transfers_on_the_same_accounts(server, settings, loses):
    server.configure(**{"transfer_policy": "ordered", "deposit_permits": 1, **settings})
    statuses, audits = deposits_and_transfers(server)
    assert statuses and {status for _, status in statuses} == {200}, statuses
    deposits = server.get("/stats").json()["deposits"]
    assert deposits["acknowledged"] == CLIENTS * ROUNDS
    audit = server.get("/audit").json()
    if loses:  # a semaphore of 4 is not a lock: the lesson is still there
        assert deposits["lost_updates"] != 0
        assert not audit["consistent"]
        return
    assert deposits["lost_updates"] == 0, deposits["per_account"]
    assert audit["consistent"] and audit["total"] == TOTAL + 3 * CLIENTS * ROUNDS, audit
    assert audits and all(read["consistent"] for read in audits), [r for r in audits if not r["consistent"]]


@pytest.mark.parametrize(("deposit_guard", "returncode"), [("lock", 0), ("unsafe", 1)])
def test_locust_deposits_and_transfers_on_two_accounts(server, tmp_path, deposit_guard, returncode):
    server.configure(deposit_guard=deposit_guard, deposit_permits=1, transfer_policy="ordered")
    run = run_locust(
        server, tmp_path, "DepositUser", "TransferUser", "AuditUser", extra=("--accounts", ",".join(ACCOUNTS))
    )
    assert run.returncode == returncode, run
    assert run.verdict["deposits"]["acknowledged"] > 0 and run.verdict["transfers"]["committed"] > 0
    if returncode == 0:
        assert run.verdict["ok"] is True, run.verdict["anomalies"]
        assert run.verdict["deposits"]["lost_updates"] == 0
        assert run.verdict["transfers"]["wrong_total_reads"] == 0
        assert server.get("/stats").json()["deposits"]["lost_updates"] == 0
        assert server.get("/audit").json()["consistent"]
    else:
        assert any("deposits: lost" in anomaly for anomaly in run.verdict["anomalies"]), run.verdict["anomalies"]
