"""Transfers against a real gunicorn: deadlocks detected live, and each policy's promise kept."""

import threading
import time
from functools import partial

import pytest
import requests

from ..harness import run_together
from ..live import live_server

pytestmark = pytest.mark.e2e

INITIAL = 100_000
TOTAL = 16 * INITIAL
PAIRS = 4  # threads each way
ROUNDS = 10


@pytest.fixture(scope="module")
def server():
    with live_server("--transfer-policy", "naive", "--race-window-ms", "2", "--deadlock-check-ms", "20") as running:
        yield running


def opposing_transfers(server, pairs=PAIRS, rounds=ROUNDS, amount=7, back=None):
    """`pairs` threads send acc-00 -> acc-01 (`amount`), as many send it back
    (`back`, default the same amount); returns every response."""
    responses, tally = [], threading.Lock()

    def client(source, target):
        with requests.Session() as session:
            for _ in range(rounds):
                body = {"from": source, "to": target, "amount": amount if source == "acc-00" else (back or amount)}
                response = session.post(f"{server.url}/transfers", json=body, timeout=30)
                with tally:
                    responses.append(response)

    directions = [("acc-00", "acc-01")] * pairs + [("acc-01", "acc-00")] * pairs
    run_together([partial(client, *direction) for direction in directions], timeout=120)
    return responses


def while_running(server, work, path, every=0.005):
    """Run `work()` and GET `path` in a loop meanwhile; return (work's result, the answers)."""
    answers, done = [], threading.Event()

    def poll():
        with requests.Session() as session:
            while not done.wait(every):
                answers.append(session.get(server.url + path, timeout=30))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        result = work()
    finally:
        done.set()
        poller.join(60)
    return result, answers


def test_naive_deadlocks_are_detected_reported_and_rolled_back_while_healthz_answers(server):
    server.configure(transfer_policy="naive")
    responses, health = while_running(server, lambda: opposing_transfers(server), "/healthz")
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 409}, statuses
    victims = [r.json() for r in responses if r.status_code == 409]
    assert victims, "opposing naive transfers never deadlocked"
    for problem in victims:
        assert problem["type"] == "urn:bankapp:problem:deadlock"
        assert problem["accounts"] == ["acc-00", "acc-01"]
        threads = {step["thread"] for step in problem["cycle"]}
        assert len(threads) >= 2
        assert {step["waits_for"] for step in problem["cycle"]} == {"acc-00", "acc-01"}
    assert health and all(r.status_code == 200 for r in health)
    audit = server.get("/audit").json()
    assert audit["consistent"] and audit["total"] == TOTAL
    stats = server.get("/stats").json()
    assert stats["transfers"]["deadlock_victims"] == len(victims)
    assert stats["transfers"]["committed"] == len(responses) - len(victims)
    assert stats["deposits"]["lost_updates"] == 0
    debug = server.get("/debug/locks").json()
    assert debug["deadlocks_detected"] >= len(victims)
    assert debug["recent_deadlocks"][-1]["broken"] is True
    assert debug["locks"] == [] and debug["live_deadlocks"] == []


@pytest.mark.parametrize("policy", ["ordered", "backoff"])
def test_ordered_and_backoff_complete_every_transfer_and_audits_always_add_up(server, policy):
    server.configure(transfer_policy=policy, lock_timeout_ms=10_000)  # a slow CI machine must not turn into 503s
    responses, audits = while_running(server, lambda: opposing_transfers(server), "/audit", every=0.01)
    assert [r.status_code for r in responses] == [200] * (2 * PAIRS * ROUNDS)
    assert audits and all(a.status_code == 200 and a.json()["consistent"] for a in audits)
    transfers = server.get("/stats").json()["transfers"]
    assert transfers["deadlocks"] == 0 and transfers["wrong_total_reads"] == 0
    assert transfers["committed"] == 2 * PAIRS * ROUNDS
    assert server.get("/audit").json()["total"] == TOTAL


def test_release_first_completes_every_transfer_but_an_audit_sees_money_in_flight(server):
    server.configure(transfer_policy="release-first", race_window_ms=10)
    try:
        responses, audits = while_running(server, lambda: opposing_transfers(server, pairs=2), "/audit")
    finally:
        server.patch("/admin/config", json={"race_window_ms": 2})  # not configure(): that resets
    assert [r.status_code for r in responses] == [200] * (2 * 2 * ROUNDS)
    wrong = [a.json() for a in audits if not a.json()["consistent"]]
    assert wrong, "no audit caught money in flight"
    assert all(a["difference"] < 0 and a["negative_accounts"] == [] for a in wrong)
    transfers = server.get("/stats").json()["transfers"]
    assert transfers["wrong_total_reads"] == len(wrong)
    assert transfers["deadlocks"] == 0
    assert server.get("/audit").json()["consistent"]  # at rest, nothing is missing


def test_unsafe_does_not_conserve_the_total(server):
    """Different amounts each way, so money lost one way cannot cancel money
    created the other way by coincidence; a few runs, since it is a race."""
    for _ in range(3):
        server.configure(transfer_policy="unsafe", race_window_ms=5)
        try:
            responses = opposing_transfers(server, amount=7, back=11)
        finally:
            server.patch("/admin/config", json={"race_window_ms": 2})  # not configure(): that resets
        assert {r.status_code for r in responses} == {200}
        audit = server.get("/audit").json()
        if not audit["consistent"]:
            break
    assert not audit["consistent"] and audit["total"] != TOTAL
    assert server.get("/stats").json()["transfers"]["total_conserved"] is False


def test_without_a_lock_timeout_a_real_deadlock_is_reported_and_healthz_still_answers():
    """`lock_timeout_ms none`: nobody gives up. The detector reports the cycle; the server lives on."""
    with live_server(
        "--transfer-policy",
        "naive",
        "--race-window-ms",
        "1000",  # both must take their first lock within this window: wide, for a loaded machine
        "--lock-timeout-ms",
        "none",
        "--deadlock-check-ms",
        "20",
    ) as server:
        stuck = []
        together = threading.Barrier(2, timeout=10)

        def send(source, target):
            together.wait()
            try:
                server.post("/transfers", json={"from": source, "to": target, "amount": 1})
            except requests.RequestException as error:  # the server is stopped under it
                stuck.append(error)

        for direction in (("acc-00", "acc-01"), ("acc-01", "acc-00")):
            threading.Thread(target=send, args=direction, daemon=True).start()
        deadline = time.monotonic() + 10
        debug = server.get("/debug/locks").json()
        while not (debug["live_deadlocks"] and debug["deadlocks_detected"]) and time.monotonic() < deadline:
            time.sleep(0.05)
            debug = server.get("/debug/locks").json()
        assert debug["live_deadlocks"][0]["accounts"] == ["acc-00", "acc-01"]
        assert debug["deadlocks_detected"] == 1
        assert debug["recent_deadlocks"][0]["broken"] is False
        assert {edge["account"] for edge in debug["wait_for"]} == {"acc-00", "acc-01"}
        time.sleep(0.2)
        assert server.get("/healthz").status_code == 200
        assert server.get("/debug/locks").json()["deadlocks_detected"] == 1  # reported once, still there
        assert server.get("/stats").json()["transfers"]["in_flight"] == 2


@pytest.mark.parametrize("policy", ["backoff", "ordered"])
def test_audits_in_a_loop_starve_no_transfer(policy):
    """The starvation bug, reproduced as a user would: 16 threads make 20 opposing 1-cent
    transfers each while one more thread loops `GET /audit`. Before the account locks
    served their waiters in order, some `backoff` transfers answered 503 after
    waiting out the whole `lock_timeout_ms`."""
    flags = ["--transfer-policy", policy, "--lock-timeout-ms", "3000", "--deadlock-check-ms", "50"]
    with live_server(*flags) as server:
        responses, audits = while_running(
            server, lambda: opposing_transfers(server, pairs=8, rounds=20, amount=1), "/audit", every=0
        )
        refused = [r.json()["detail"] for r in responses if r.status_code != 200]
        assert refused == [] and len(responses) == 320
        assert audits and all(a.status_code == 200 and a.json()["consistent"] for a in audits)
        transfers = server.get("/stats").json()["transfers"]
        assert transfers["committed"] == 320 and transfers["lock_timeouts"] == 0
        audit = server.get("/audit").json()
        assert audit["consistent"] and audit["total"] == TOTAL
