"""Two threads of one worker adopting settings they found in their deposits' statements, in the wrong order.

A deposit's statement finds the settings' version in its own snapshot; two
deposits of one worker can come back in either order, the older version
last. What the worker keeps, and what it applies to the interpreter (the
switch interval, which is the whole process's), must be the newest: a
request that starts after the last PATCH's answer runs under it.
"""

import sys
import threading

import pytest

from bankapp.lab.forensics import calling
from bankapp.postgres import bank as bank_module

pytestmark = pytest.mark.postgres


@pytest.fixture
def switch_interval():
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_an_older_version_found_last_is_neither_kept_nor_applied(make_pg_lab, monkeypatch, switch_interval):
    worker = make_pg_lab(deposit_guard="atomic-update", switch_interval_us=5000)
    other = make_pg_lab(join=True)
    with calling("req-0", "deposit"):
        worker.bank.deposit("acc-04", 1)  # the worker holds the settings' version: atomic-update, 5 ms
    other.settings.patch({"switch_interval_us": 1000})  # version N+1, which the slow deposit will find

    found_old, let_go = threading.Event(), threading.Event()
    real = bank_module.add_to_balance

    def slow_first(*args, **kwargs):
        answer = real(*args, **kwargs)
        if threading.current_thread().name == "slow":  # its statement has run: it found N+1
            found_old.set()
            assert let_go.wait(10)
        return answer

    monkeypatch.setattr(bank_module, "add_to_balance", slow_first)
    answers: list[object] = []

    def slow_deposit():
        with calling("req-slow", "deposit"):
            answers.append(worker.bank.deposit("acc-04", 10))

    slow = threading.Thread(target=slow_deposit, name="slow")
    slow.start()
    assert found_old.wait(10)
    other.settings.patch({"switch_interval_us": 200})  # version N+2: the last PATCH answered
    with calling("req-fast", "deposit"):  # starts after it, finds it in its statement and adopts it
        worker.bank.deposit("acc-04", 100)
    assert sys.getswitchinterval() == pytest.approx(200e-6)
    let_go.set()
    slow.join(10)
    assert not slow.is_alive() and answers == [100_111]

    with calling("req-later", "deposit"):  # starts after every answer: runs under N+2
        assert worker.config().switch_interval_us == 200
        worker.bank.deposit("acc-04", 1)
    assert worker.settings.cached.switch_interval_us == 200
    assert sys.getswitchinterval() == pytest.approx(200e-6), "the process runs under a PATCH older than the last"
