"""How a worker stops: the line that names what was stuck, and the short last line.

The end-to-end tests stop a real `bankapp serve` whose requests can never
finish (two transfers in a deadlock, a batch deposit waiting for itself,
both under `lock_timeout_ms none`) and read what it printed.
"""

import contextlib
import os
import re
import signal
import threading
import time

import pytest
import requests

from bankapp.server.shutdown import final_report, stuck_sentence, summary

from ..live import live_server

#: gunicorn's graceful_timeout in `bankapp serve`.
GRACEFUL_TIMEOUT = 10


def test_the_last_line_of_an_idle_worker_says_nothing_is_held(lab):
    line = summary(final_report(lab))
    assert re.fullmatch(
        rf"bankapp: worker {os.getpid()} stopped: no deposit acknowledged, 0 transfers committed, "
        r"0 checkouts completed; no guard or lock held",
        line,
    ), line


def test_the_last_line_counts_deposits_and_names_a_held_account_lock(lab):
    lab.bank.deposit("acc-01", 25)
    lab.bank.deposit("acc-01", 5)
    lock = lab.locks["acc-03"]
    assert lock.acquire(timeout=1)
    try:
        report = final_report(lab)
        assert report["held_guards"] == ["account lock of acc-03"]
        assert "2 deposits acknowledged (30 cents, 0 lost)" in summary(report)
        assert summary(report).endswith("; still held: account lock of acc-03")
    finally:
        lock.release()
    assert final_report(lab)["held_guards"] == []


def test_requests_in_a_deadlock_are_named_with_their_accounts(lab):
    """Two threads each hold one account lock and wait (2 s at most, no detector) for the other's."""
    locked = threading.Barrier(2, timeout=5)
    idents = {}

    def cross(first, second):
        idents[first] = threading.get_ident()
        lab.locks[first].acquire(timeout=1)
        locked.wait()
        try:
            if lab.locks[second].acquire(timeout=2, check_after=None):
                lab.locks[second].release()
        finally:
            lab.locks[first].release()

    threads = [threading.Thread(target=cross, args=pair) for pair in [("acc-00", "acc-01"), ("acc-01", "acc-00")]]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(lab.locks.snapshot()["wait_for"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    running = {ident: "POST /transfers" for ident in idents.values()}
    running[1] = "POST /accounts/acc-05/deposit"  # a thread holding and waiting for nothing
    sentence = stuck_sentence(running, lab)
    for thread in threads:
        thread.join(10)
    assert sentence == (
        "2 requests still waiting on acc-00 and acc-01 in a deadlock; "
        "1 request still running (POST /accounts/acc-05/deposit)"
    )


def start_deadlock(server) -> list[threading.Thread]:
    """Two opposing transfers under `naive` with a 200 ms window: each holds one account and waits forever."""

    def transfer(source, target):
        with contextlib.suppress(requests.RequestException):  # the server stopped them: no answer
            requests.post(f"{server.url}/transfers", json={"from": source, "to": target, "amount": 5}, timeout=30)

    clients = [threading.Thread(target=transfer, args=p) for p in [("acc-00", "acc-01"), ("acc-01", "acc-00")]]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 10
    while not server.get("/debug/locks").json()["live_deadlocks"]:
        assert time.monotonic() < deadline, "the transfers never deadlocked"
        time.sleep(0.05)
    return clients


def bankapp_lines(output: list[str]) -> list[str]:
    return [line.rstrip("\n") for line in output if line.startswith("bankapp: ")]


@pytest.mark.e2e
def test_sigterm_stops_requests_stuck_in_a_deadlock_says_so_and_is_not_killed():
    flags = ("--transfer-policy", "naive", "--lock-timeout-ms", "none", "--race-window-ms", "200")
    with live_server(*flags) as server:
        clients = start_deadlock(server)
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(GRACEFUL_TIMEOUT + 5)
        took = time.monotonic() - sent
        server.stop()  # its output read to the end
        for client in clients:
            client.join(10)
    output = "".join(server.output)
    assert exit_code == 0
    assert took < GRACEFUL_TIMEOUT - 1, output
    assert "SIGKILL" not in output and "Perhaps out of memory" not in output
    lines = bankapp_lines(server.output)
    assert lines[-2] == "bankapp: 2 requests still waiting on acc-00 and acc-01 in a deadlock: stopping them", output
    assert re.fullmatch(
        r"bankapp: worker \d+ stopped: no deposit acknowledged, 0 transfers committed \(1 deadlock\), "
        r"0 checkouts completed; still held: account lock of acc-00, account lock of acc-01",
        lines[-1],
    ), output
    assert "{" not in output.split("Handling signal")[-1], "no JSON at the default log level"


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
@pytest.mark.e2e
def test_ctrl_c_with_a_request_stuck_for_good_stops_it_before_the_graceful_timeout_ends():
    """A batch deposit under `lock` waits for its own guard forever; Ctrl-C (SIGINT to the whole
    process group, master and worker, as a terminal sends it) waits for it until shortly
    before gunicorn would kill the worker, then stops it and says which guard it held."""
    flags = ("--deposit-guard", "lock", "--lock-timeout-ms", "none", "--log-level", "debug")
    with live_server(*flags, new_session=True) as server:
        batch = threading.Thread(
            target=lambda: suppress_errors(server.post, "/accounts/acc-00/batch-deposit", json={"amounts": [1, 2]}),
        )
        batch.start()
        time.sleep(0.5)  # the batch holds the guard and waits for it again
        sent = time.monotonic()
        os.killpg(server.process.pid, signal.SIGINT)
        exit_code = server.process.wait(GRACEFUL_TIMEOUT + 5)
        took = time.monotonic() - sent
        server.stop()
        batch.join(10)
    output = "".join(server.output)
    assert exit_code == 0
    assert GRACEFUL_TIMEOUT - 3 < took < GRACEFUL_TIMEOUT, output
    assert "SIGKILL" not in output and "Perhaps out of memory" not in output
    lines = bankapp_lines(server.output)
    assert lines[-3] == "bankapp: stopping; waiting up to 8 s for 1 request in flight", output
    assert lines[-2] == (
        "bankapp: 1 request still running (POST /accounts/acc-00/batch-deposit), holding the lock guard of acc-00: "
        "stopping it"
    ), output
    assert lines[-1].endswith(
        "no deposit acknowledged, 0 transfers committed, 0 checkouts completed; still held: lock guard of acc-00"
    ), output
    assert re.search(r"\[DEBUG\] bankapp: worker \d+ final report \{", output), "the details, at debug level"


def suppress_errors(call, *args, **kwargs):
    with contextlib.suppress(requests.RequestException):  # stopped by the server: no answer
        call(*args, **kwargs)
