"""Stuck locks and reset under load against a real `bankapp serve` (issue 15, cases 2 and 3).

Throughout each test a watcher asks `/healthz` every 100 ms with a 1 s
timeout: the server must answer every time, whatever the locks hold.
"""

import threading
import time
from contextlib import contextmanager

import pytest
import requests

from ..harness import wait_until
from ..live import live_server

pytestmark = pytest.mark.e2e

INITIAL = 100_000
TOTAL = 16 * INITIAL


@contextmanager
def healthy(server):
    """Ask `/healthz` every 0.1 s while the block runs; every answer must be a 200 within 1 s."""
    failures, answers, done = [], [], threading.Event()

    def watch():
        with requests.Session() as session:
            while not done.is_set():
                try:
                    status = session.get(server.url + "/healthz", timeout=1).status_code
                    answers.append(status)
                    if status != 200:
                        failures.append(status)
                except requests.RequestException as error:
                    failures.append(type(error).__name__)
                done.wait(0.1)

    watcher = threading.Thread(target=watch, name="healthz-watcher")
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(5)
    assert failures == [], f"/healthz failed {len(failures)} of {len(answers) + len(failures)} times: {failures[:5]}"
    assert len(answers) >= 3


class Calls:
    """HTTP calls, each in a thread of its own; `answers[name]` is its response (or the error)."""

    def __init__(self, server):
        self.server = server
        self.threads, self.answers = {}, {}

    def start(self, name, method, path, **kwargs):
        def call():
            try:
                self.answers[name] = requests.request(method, self.server.url + path, timeout=60, **kwargs)
            except requests.RequestException as error:
                self.answers[name] = error

        self.threads[name] = threading.Thread(target=call, name=name)
        self.threads[name].start()

    def join(self, timeout=30):
        deadline = time.monotonic() + timeout
        for thread in self.threads.values():
            thread.join(max(0.1, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in self.threads.values()), "a request never got its answer"
        return self.answers


def quick(server, path):
    """GET that must answer 200 within 1 s, whatever is stuck."""
    response = requests.get(server.url + path, timeout=1)
    assert response.status_code == 200, response.text
    return response.json()


def problem_type(response) -> str:
    return response.json().get("type", "")


def settle(condition):
    """Poll the server (a call every 50 ms) until `condition` holds."""
    wait_until(condition, timeout=15, every=0.05)


def deadlock_then_audits(server, calls, audits):
    """Two opposing transfers that will never give up, then `audits` GET /audit behind them."""
    calls.start("there", "POST", "/transfers", json={"from": "acc-00", "to": "acc-01", "amount": 5})
    calls.start("back", "POST", "/transfers", json={"from": "acc-01", "to": "acc-00", "amount": 5})
    settle(lambda: quick(server, "/debug/locks")["live_deadlocks"])
    for i in range(audits):
        calls.start(f"audit-{i}", "GET", "/audit")


def assert_at_rest(server):
    """Nothing held, nothing in flight, the books whole."""
    assert quick(server, "/debug/locks")["locks"] == []
    audit = quick(server, "/audit")
    assert audit["consistent"] and audit["total"] == audit["expected_total"] == TOTAL
    stats = quick(server, "/stats")
    assert stats["transfers"]["in_flight"] == 0 and stats["operations"]["in_flight"] == 0
    assert stats["deposits"]["lost_updates"] == 0


# Case 2: a deadlock that lock_timeout_ms none makes permanent


@pytest.fixture(scope="module")
def forever():
    with live_server("--transfer-policy", "naive", "--lock-timeout-ms", "none", "--race-window-ms", "200") as server:
        yield server


@pytest.fixture
def stuck(forever):
    forever.configure(deposit_guard="unsafe")
    yield forever
    assert_at_rest(forever)


def test_a_deadlock_plus_thirty_audits_keeps_healthz_up_and_the_operator_breaks_it(stuck):
    calls = Calls(stuck)
    with healthy(stuck):
        deadlock_then_audits(stuck, calls, 30)
        # 2 transfers + 28 audits fill the 30 threads that may wait on locks; 2 audits are refused at once
        settle(lambda: sum(1 for name in calls.answers if name.startswith("audit")) == 2)
        operations = quick(stuck, "/stats")["operations"]
        assert (operations["limit"], operations["in_flight"]) == (30, 30)
        settle(lambda: len(quick(stuck, "/debug/locks")["locks"][0]["waiters"]) == 29)  # "back", 28 audits
        assert quick(stuck, "/admin/config")["lock_timeout_ms"] == "none"
        broken = requests.post(stuck.url + "/admin/break-deadlocks", timeout=1)
        assert broken.status_code == 200
        answers = calls.join()
    [deadlock] = broken.json()["deadlocks_broken"]
    assert deadlock["broken_by"] == "operator" and deadlock["accounts"] == ["acc-00", "acc-01"]
    transfers = {name: answers[name] for name in ("there", "back")}
    assert sorted(r.status_code for r in transfers.values()) == [200, 409]
    [victim] = [r for r in transfers.values() if r.status_code == 409]
    assert problem_type(victim) == "urn:bankapp:problem:deadlock" and victim.json()["deadlock_id"] == deadlock["id"]
    audits = [answers[f"audit-{i}"] for i in range(30)]
    refused = [r for r in audits if r.status_code == 503]
    assert len(refused) == 2 and all(problem_type(r) == "urn:bankapp:problem:server-busy" for r in refused)
    assert all(r.headers["Retry-After"] == "1" and r.json()["limit"] == 30 for r in refused)
    assert [r.json()["consistent"] for r in audits if r.status_code == 200] == [True] * 28
    [done] = [r.json() for r in transfers.values() if r.status_code == 200]
    balances = {a["id"]: a["balance"] for a in quick(stuck, "/accounts")["accounts"]}
    assert balances[done["from"]["id"]] == INITIAL - 5 and balances[done["to"]["id"]] == INITIAL + 5
    assert sum(balances.values()) == TOTAL


def test_reset_alone_breaks_the_permanent_deadlock_and_restores_the_lab(stuck):
    calls = Calls(stuck)
    with healthy(stuck):
        deadlock_then_audits(stuck, calls, 5)
        settle(lambda: quick(stuck, "/stats")["operations"]["in_flight"] == 7)
        reset = requests.post(stuck.url + "/admin/reset", timeout=15)
        answers = calls.join()
    assert reset.status_code == 200
    assert [d["broken_by"] for d in reset.json()["deadlocks_broken"]] == ["operator"]
    assert sorted(answers[name].status_code for name in ("there", "back")) == [200, 409]
    assert all(answers[f"audit-{i}"].json()["consistent"] for i in range(5))
    assert {a["balance"] for a in quick(stuck, "/accounts")["accounts"]} == {INITIAL}
    stats = quick(stuck, "/stats")
    assert stats["transfers"]["committed"] == 0 and stats["transfers"]["deadlock_victims"] == 0


def test_a_batch_deposit_that_waits_for_itself_forever_is_broken_by_the_operator(stuck):
    stuck.configure(deposit_guard="lock")
    calls = Calls(stuck)
    with healthy(stuck):
        calls.start("batch", "POST", "/accounts/acc-00/batch-deposit", json={"amounts": [1, 2, 3]})
        settle(lambda: quick(stuck, "/stats")["operations"]["in_flight"] == 1)
        calls.start("deposit", "POST", "/accounts/acc-00/deposit", json={"amount": 40})
        settle(lambda: quick(stuck, "/stats")["operations"]["in_flight"] == 2)
        time.sleep(0.3)
        assert calls.answers == {}, "both wait: the batch for itself, the deposit for the batch"
        broken = requests.post(stuck.url + "/admin/break-deadlocks", timeout=1).json()["deadlocks_broken"]
        answers = calls.join()
    assert [d["cycle"][0]["waits_for"] for d in broken] == ["lock guard of acc-00"]
    assert answers["batch"].status_code == 409 and problem_type(answers["batch"]) == "urn:bankapp:problem:deadlock"
    assert answers["deposit"].status_code == 200
    assert quick(stuck, "/accounts/acc-00")["balance"] == INITIAL + 40  # nothing of the batch, all of the deposit
    deposits = quick(stuck, "/stats")["deposits"]
    assert deposits["acknowledged_amount"] == 40 and deposits["rejected"] == {"deadlock_victim": 1}
    stuck.configure(deposit_guard="unsafe")


# Case 3: reset under load


@pytest.fixture(scope="module")
def slow_ordered():
    with live_server("--transfer-policy", "ordered", "--race-window-ms", "1000") as server:
        yield server


def test_a_reset_during_a_transfer_waits_for_it_and_leaves_the_books_whole(slow_ordered):
    slow_ordered.configure(deposit_guard="unsafe")
    calls = Calls(slow_ordered)
    with healthy(slow_ordered):
        calls.start("transfer", "POST", "/transfers", json={"from": "acc-00", "to": "acc-01", "amount": 500})
        settle(lambda: quick(slow_ordered, "/stats")["transfers"]["in_flight"] == 1)
        reset = requests.post(slow_ordered.url + "/admin/reset", timeout=15)
        answers = calls.join()
    assert reset.status_code == 200
    assert answers["transfer"].status_code == 200
    assert_at_rest(slow_ordered)
    assert quick(slow_ordered, "/stats")["transfers"]["committed"] == 0  # it finished before the reset
    assert {a["balance"] for a in quick(slow_ordered, "/accounts")["accounts"]} == {INITIAL}


def test_fifteen_transfers_and_deposits_with_a_reset_among_them_leave_no_counter_negative(slow_ordered):
    slow_ordered.configure(deposit_guard="unsafe")
    calls = Calls(slow_ordered)
    with healthy(slow_ordered):
        for i in range(8):  # two each way on four pairs of accounts
            source, target = f"acc-0{2 * (i % 4)}", f"acc-0{2 * (i % 4) + 1}"
            if i >= 4:
                source, target = target, source
            calls.start(f"transfer-{i}", "POST", "/transfers", json={"from": source, "to": target, "amount": 100})
        for i in range(7):  # deposits on accounts no transfer touches
            calls.start(f"deposit-{i}", "POST", f"/accounts/acc-{8 + i:02d}/deposit", json={"amount": 3})
        settle(lambda: quick(slow_ordered, "/stats")["operations"]["in_flight"] >= 8)
        reset = requests.post(slow_ordered.url + "/admin/reset", timeout=15)
        answers = calls.join()
    assert reset.status_code == 200
    assert {response.status_code for response in answers.values()} == {200}
    assert_at_rest(slow_ordered)
    stats = quick(slow_ordered, "/stats")
    for section in ("deposits", "transfers", "operations"):
        negative = {k: v for k, v in stats[section].items() if isinstance(v, int) and v < 0}
        assert negative == {}, f"{section}: {negative}"
