"""How a worker stops: the line that names what was stuck, and the short last line.

The end-to-end tests stop a real `bankapp serve` whose requests can never
finish (two transfers in a deadlock, a batch deposit waiting for itself,
both under `lock_timeout_ms none`) and read what it printed.
"""

import contextlib
import logging
import os
import re
import signal
import threading
import time
from concurrent import futures

import pytest
import requests
from gunicorn.config import Config

from bankapp.server.shutdown import final_report, stuck_sentence, summary
from bankapp.server.worker import HardenedWorker

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
        batch = start_stuck_batch(server)
        exit_code, took = ctrl_c(server)
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


def ctrl_c(server) -> tuple[int, float]:
    """SIGINT to the server's process group, as a terminal's Ctrl-C: its exit code, and the seconds it took."""
    sent = time.monotonic()
    os.killpg(server.process.pid, signal.SIGINT)
    exit_code = server.process.wait(GRACEFUL_TIMEOUT + 5)
    return exit_code, time.monotonic() - sent


def start_stuck_batch(server) -> threading.Thread:
    """A batch deposit under `lock` (and `lock_timeout_ms` none) holding the guard and waiting for it again."""
    batch = threading.Thread(
        target=lambda: suppress_errors(server.post, "/accounts/acc-00/batch-deposit", json={"amounts": [1, 2]}),
    )
    batch.start()
    time.sleep(0.5)
    return batch


def suppress_errors(call, *args, **kwargs):
    with contextlib.suppress(requests.RequestException):  # stopped by the server: no answer
        call(*args, **kwargs)


@pytest.fixture
def idle_worker():
    """A hardened worker as gunicorn makes it, with its thread pool and no socket (it never runs)."""
    worker = HardenedWorker(0, os.getppid(), [], None, 30, Config(), logging.getLogger(__name__))
    worker.tpool = futures.ThreadPoolExecutor(1)
    yield worker
    worker.tpool.shutdown()
    worker.method_queue.close()
    worker.tmp.close()


def test_a_quick_stop_signal_ends_the_worker_once(idle_worker):
    worker = idle_worker
    with pytest.raises(SystemExit):
        worker.handle_quit(signal.SIGINT, None)
    assert worker.quitting and not worker.alive
    worker.handle_quit(signal.SIGQUIT, None)  # the master's SIGQUIT after the terminal's SIGINT: nothing more


def test_a_second_stop_signal_waits_on_no_lock_the_main_thread_may_hold(idle_worker):
    """Ctrl-C reaches a worker twice (SIGINT from the terminal, SIGQUIT from the master). The second
    handler runs nested in the first, on the main thread, which may be inside the pool's `submit`
    holding its lock: a handler that shuts the pool down there waits forever (gthread's did)."""
    worker = idle_worker
    worker.quitting = True  # the first signal's handler is under way
    second = threading.Thread(target=worker.handle_quit, args=(signal.SIGQUIT, None), daemon=True)
    with worker.tpool._shutdown_lock:  # as `submit` holds it
        second.start()
        second.join(2)
        returned = not second.is_alive()
    assert returned, "the second stop signal's handler waited for the thread pool's lock"
    assert not worker.alive


def test_the_first_stop_signal_ends_the_worker_even_while_the_pool_is_locked(idle_worker):
    """The first handler may land where the main thread holds the pool's lock too: it ends the worker all
    the same (the pool is shut down later, once the loop is left)."""
    worker = idle_worker
    ended = []

    def first():
        try:
            worker.handle_quit(signal.SIGINT, None)
        except SystemExit as exit_:
            ended.append(exit_.code)

    handler = threading.Thread(target=first, daemon=True)
    with worker.tpool._shutdown_lock:  # as `submit` holds it
        handler.start()
        handler.join(2)
        returned = not handler.is_alive()
    assert returned and ended == [0], "the first stop signal's handler waited for the thread pool's lock"


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
@pytest.mark.e2e
def test_ctrl_c_after_sigterm_stops_a_stuck_request_before_the_master_gives_up():
    """After SIGTERM the worker waits for a stuck request up to shortly before the graceful timeout; a Ctrl-C
    then leaves it 2 s (gunicorn's master stops waiting): it stops the request within them, and says so."""
    flags = ("--deposit-guard", "lock", "--lock-timeout-ms", "none")
    with live_server(*flags, new_session=True) as server:
        batch = start_stuck_batch(server)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1)
        exit_code, took = ctrl_c(server)
        server.stop()
        batch.join(10)
    output = "".join(server.output)
    assert exit_code == 0, output
    assert took < GRACEFUL_TIMEOUT - 3, output  # not the graceful timeout's wait (the master's 2 s, and its exit)
    assert "SIGKILL" not in output, output
    lines = bankapp_lines(server.output)
    assert lines[-2].endswith("holding the lock guard of acc-00: stopping it"), output
    assert lines[-1].endswith("still held: lock guard of acc-00"), output


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
@pytest.mark.e2e
def test_ctrl_c_right_after_requests_always_ends_with_the_last_line():
    """Ctrl-C while the worker hands new connections to its threads. It froze about one time in four
    (then gunicorn's SIGKILL, and no last line) before the stop handlers took no lock."""
    for attempt in range(10):
        with live_server(new_session=True) as server:
            for _ in range(10):
                requests.post(f"{server.url}/accounts/acc-00/deposit", json={"amount": 1}, timeout=10)
            exit_code, took = ctrl_c(server)
            server.stop()
        output = "".join(server.output)
        assert exit_code == 0, output
        assert "SIGKILL" not in output, f"attempt {attempt}: {output}"
        assert took < GRACEFUL_TIMEOUT - 2, f"attempt {attempt}: {output}"
        assert re.fullmatch(
            r"bankapp: worker \d+ stopped: 10 deposits acknowledged \(10 cents, 0 lost\), 0 transfers committed, "
            r"0 checkouts completed; no guard or lock held",
            bankapp_lines(server.output)[-1],
        ), f"attempt {attempt}: {output}"
