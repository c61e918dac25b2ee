"""The instrumented locks and the deadlock detector, with real threads and barriers."""

import threading
import time

import pytest

from bankapp.lab.guards import GuardTimeout
from bankapp.lab.locks import DeadlockVictim, LockTable

ACCOUNTS = ["acc-00", "acc-01", "acc-02", "acc-03"]
CHECK = 0.02  # deadlock_check_ms 20, in seconds


def run_cycle(table, pairs, timeout=2.0, check_after=CHECK):
    """Thread i takes `pairs[i][0]`, meets the others at a barrier, then waits for `pairs[i][1]`.

    The barrier makes the cycle certain: every thread holds its first lock
    before any asks for its second. Returns what each thread ended with.
    """
    holding = threading.Barrier(len(pairs), timeout=5)
    outcome = {}

    def worker(index, first, second):
        lock = table.acquire(first, timeout, check_after)
        try:
            holding.wait()
            try:
                table.acquire(second, timeout, check_after).release()
                outcome[index] = "done"
            except DeadlockVictim as victim:
                outcome[index] = victim
            except GuardTimeout as error:
                outcome[index] = error
        finally:
            lock.release()

    threads = [threading.Thread(target=worker, args=(i, *pair), name=f"worker-{i}") for i, pair in enumerate(pairs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    return outcome


def test_two_opposing_threads_deadlock_and_exactly_one_is_the_victim():
    table = LockTable(ACCOUNTS)
    outcome = run_cycle(table, [("acc-00", "acc-01"), ("acc-01", "acc-00")])
    victims = [o for o in outcome.values() if isinstance(o, DeadlockVictim)]
    assert len(victims) == 1
    assert sorted(o for o in outcome.values() if o == "done") == ["done"]
    deadlock = victims[0].deadlock
    assert deadlock["accounts"] == ["acc-00", "acc-01"]
    assert deadlock["broken"] is True
    assert deadlock["victim"] in {"worker-0", "worker-1"}
    assert deadlock["detected_after_ms"] >= CHECK * 1000 * 0.9
    steps = {step["thread"]: step for step in deadlock["cycle"]}
    assert steps["worker-0"]["holds"] == ["acc-00"] and steps["worker-0"]["waits_for"] == "acc-01"
    assert steps["worker-1"]["holds"] == ["acc-01"] and steps["worker-1"]["waits_for"] == "acc-00"
    assert "worker-0 holds acc-00 and waits for acc-01" in str(victims[0])
    assert table.detected == 1
    assert list(table.recent) == [deadlock]
    snapshot = table.snapshot()
    assert snapshot["locks"] == snapshot["wait_for"] == snapshot["live_deadlocks"] == []
    assert snapshot["recent_deadlocks"] == [deadlock]


def test_a_cycle_of_three_accounts_is_found_too():
    table = LockTable(ACCOUNTS)
    outcome = run_cycle(table, [("acc-00", "acc-01"), ("acc-01", "acc-02"), ("acc-02", "acc-00")])
    victims = [o for o in outcome.values() if isinstance(o, DeadlockVictim)]
    assert len(victims) == 1
    assert list(outcome.values()).count("done") == 2
    deadlock = victims[0].deadlock
    assert deadlock["accounts"] == ["acc-00", "acc-01", "acc-02"]
    assert sorted(step["thread"] for step in deadlock["cycle"]) == ["worker-0", "worker-1", "worker-2"]
    for step in deadlock["cycle"]:
        index = int(step["thread"].rsplit("-", 1)[1])
        assert step["holds"] == [f"acc-0{index}"]
        assert step["waits_for"] == f"acc-0{(index + 1) % 3}"


def test_a_long_wait_without_a_cycle_is_a_timeout_not_a_deadlock():
    table = LockTable(ACCOUNTS)
    held = table.acquire("acc-00", None, CHECK)
    seen = {}

    def waiter():
        try:
            table.acquire("acc-00", 0.15, CHECK)
        except GuardTimeout as error:
            seen["error"] = error

    thread = threading.Thread(target=waiter, name="patient")
    started = time.monotonic()
    thread.start()
    thread.join(5)
    assert time.monotonic() - started >= 0.15
    held.release()
    assert seen["error"].guard.label == "acc-00"
    assert table.detected == 0


def test_the_graph_shows_holder_waiter_and_edge_while_waiting():
    table = LockTable(ACCOUNTS)
    held = table.acquire("acc-02", None, CHECK)
    thread = threading.Thread(target=lambda: table.acquire("acc-02", 5, CHECK).release(), name="waiter")
    thread.start()
    deadline = time.monotonic() + 5
    while not table.snapshot()["wait_for"] and time.monotonic() < deadline:
        time.sleep(0.001)
    snapshot = table.snapshot()
    me = threading.current_thread()
    assert snapshot["locks"][0]["account"] == "acc-02"
    assert snapshot["locks"][0]["holder"] == {"thread": me.name, "ident": me.ident}
    assert [w["thread"] for w in snapshot["locks"][0]["waiters"]] == ["waiter"]
    edge = snapshot["wait_for"][0]
    assert edge["waiter"]["thread"] == "waiter" and edge["account"] == "acc-02"
    assert edge["holder"]["thread"] == me.name
    assert snapshot["live_deadlocks"] == []
    held.release()
    thread.join(5)
    assert table.snapshot()["locks"] == []


@pytest.mark.parametrize(
    ("bounded_check", "ends_with"),
    [pytest.param(10, GuardTimeout, id="then-a-timeout-ends-it"), pytest.param(1.5, DeadlockVictim, id="then-broken")],
)
def test_without_a_lock_timeout_the_deadlock_is_reported_once_and_not_broken(bounded_check, ends_with):
    """worker-0 may wait forever (lock_timeout none): it reports the cycle but does not give up.

    worker-1 has a timeout. Checking only after 10 s, it never gets to check
    and its timeout ends the deadlock; checking after 0.4 s, it finds the
    deadlock already on record, and breaks that one (no second record).
    """
    table = LockTable(ACCOUNTS)
    holding = threading.Barrier(2, timeout=5)
    outcome = {}

    def worker(name, first, second, timeout, check_after):
        lock = table.acquire(first, None, check_after)
        try:
            holding.wait()
            try:
                table.acquire(second, timeout, check_after).release()
                outcome[name] = "done"
            except (GuardTimeout, DeadlockVictim) as error:
                outcome[name] = error
        finally:
            lock.release()

    forever = threading.Thread(target=worker, args=("worker-0", "acc-00", "acc-01", None, CHECK), name="worker-0")
    bounded = threading.Thread(
        target=worker, args=("worker-1", "acc-01", "acc-00", 3.0, bounded_check), name="worker-1"
    )
    forever.start()
    bounded.start()
    deadline = time.monotonic() + 5
    while not table.snapshot()["recent_deadlocks"] and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(CHECK * 5)  # several more checks by worker-0: still one report
    snapshot = table.snapshot()
    assert len(snapshot["recent_deadlocks"]) == 1
    deadlock = snapshot["recent_deadlocks"][0]
    assert deadlock["broken"] is False and deadlock["victim"] is None
    assert deadlock["accounts"] == ["acc-00", "acc-01"]
    assert snapshot["live_deadlocks"][0]["accounts"] == ["acc-00", "acc-01"]
    forever.join(5)
    bounded.join(5)
    assert outcome["worker-0"] == "done"
    assert isinstance(outcome["worker-1"], ends_with)
    assert table.detected == 1
    assert table.snapshot()["recent_deadlocks"][0]["broken"] is (ends_with is DeadlockVictim)


def test_only_the_holder_may_release():
    table = LockTable(ACCOUNTS)
    lock = table.acquire("acc-00", None, CHECK)
    errors = []

    def thief():
        try:
            lock.release()
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=thief)
    thread.start()
    thread.join(5)
    assert errors
    assert table.snapshot()["locks"][0]["holder"]["ident"] == threading.get_ident()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_a_cycle_through_a_brief_try_is_not_a_deadlock():
    """`backoff` only tries its second lock: it will give up, so the waiter behind it must not."""
    table = LockTable(ACCOUNTS)
    holding = threading.Barrier(2, timeout=5)
    outcome = {}

    def patient():
        lock = table.acquire("acc-00", None, CHECK)
        holding.wait()
        try:
            table.acquire("acc-01", 5, CHECK).release()
            outcome["patient"] = "done"
        except DeadlockVictim as victim:
            outcome["patient"] = victim
        finally:
            lock.release()

    def trying():
        lock = table.acquire("acc-01", None, CHECK)
        holding.wait()
        outcome["trying"] = table["acc-00"].try_acquire(CHECK * 5)  # outlasts the patient thread's first check
        lock.release()

    threads = [threading.Thread(target=patient), threading.Thread(target=trying)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert outcome == {"patient": "done", "trying": False}
    assert table.detected == 0


def test_a_recorded_deadlock_whose_record_is_gone_is_written_again_whole():
    """The victim's 409 needs a complete record even after `recent` forgot it (found in review: a KeyError, a 500)."""
    from bankapp.lab.locks import DeadlockVictim, LockTable, Wait

    table = LockTable(["acc-00", "acc-01"])
    first = Wait(ident=1, thread="t1", account="acc-01", since=0.0, reported=7)
    second = Wait(ident=2, thread="t2", account="acc-00", since=0.0, reported=7)
    table._holder.update({"acc-00": (1, "t1"), "acc-01": (2, "t2")})
    deadlock = table._break_recorded(7, first, [first, second])
    assert deadlock["id"] == 7 and deadlock["broken"] and deadlock["victim"] == "t1"
    assert deadlock["accounts"] == ["acc-00", "acc-01"]
    assert "thread t1 holds acc-00 and waits for acc-01" in str(DeadlockVictim(deadlock))
    assert table.snapshot()["recent_deadlocks"] == [deadlock]
