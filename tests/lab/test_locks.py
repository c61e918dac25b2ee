"""The instrumented locks and the deadlock detector, with real threads and barriers."""

import threading
import time

import pytest

from bankapp.lab.guards import GuardTimeout
from bankapp.lab.locks import DeadlockVictim, LockTable

from ..harness import in_another_thread, run_together

ACCOUNTS = ["acc-00", "acc-01", "acc-02", "acc-03"]
CHECK = 0.02  # deadlock_check_ms 20, in seconds


def run_cycle(table, pairs, timeout=2.0, check_after=CHECK):
    """Thread i takes `pairs[i][0]`, meets the others at a barrier, then waits for `pairs[i][1]`.

    The barrier makes the cycle certain: every thread holds its first lock
    before any asks for its second. Returns what each thread ended with.
    """
    holding = threading.Barrier(len(pairs), timeout=5)

    def worker(first, second):
        lock = table.acquire(first, timeout, check_after)
        try:
            holding.wait()
            table.acquire(second, timeout, check_after).release()
            return "done"
        finally:
            lock.release()

    jobs = [lambda pair=pair: worker(*pair) for pair in pairs]
    outcome = run_together(
        jobs, names=[f"worker-{i}" for i in range(len(pairs))], timeout=10, expect=(DeadlockVictim, GuardTimeout)
    )
    assert all(o == "done" or isinstance(o, DeadlockVictim | GuardTimeout) for o in outcome), outcome
    return dict(enumerate(outcome))


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
    assert isinstance(in_another_thread(lock.release, expect=(RuntimeError,)), RuntimeError)
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


# Fairness: one queue per lock, served in order


def queue_of(table, account):
    """The names of the threads queued for `account`, first first."""
    for lock in table.snapshot()["locks"]:
        if lock["account"] == account:
            return [waiter["thread"] for waiter in lock["waiters"]]
    return []


def wait_for_queue(table, account, names, timeout=5):
    deadline = time.monotonic() + timeout
    while queue_of(table, account) != names:
        assert time.monotonic() < deadline, f"queue never became {names}: {queue_of(table, account)}"
        time.sleep(0.002)


def queue_up(table, account, waiters, hold_for=0.02):
    """Start a thread per (name, timeout), each joining `account`'s queue only once the one before it is in.

    Each records in `order` when it gets the lock (or that it timed out),
    holds it `hold_for` seconds, and lets go.
    """
    order, threads = [], []

    def take(timeout):
        try:
            lock = table.acquire(account, timeout, CHECK)
        except GuardTimeout:
            order.append(f"{threading.current_thread().name} timed out")
            return
        order.append(threading.current_thread().name)
        time.sleep(hold_for)
        lock.release()

    names = [name for name, _ in waiters]
    for index, (name, timeout) in enumerate(waiters):
        threads.append(threading.Thread(target=take, args=(timeout,), name=name))
        threads[-1].start()
        wait_for_queue(table, account, names[: index + 1])
    return threads, order


def test_release_hands_the_lock_to_the_first_waiter_and_the_graph_shows_it_at_once():
    table = LockTable(ACCOUNTS)
    held = table.acquire("acc-00", None, CHECK)
    threads, order = queue_up(table, "acc-00", [("first", 5), ("second", 5), ("third", 5)])
    held.release()
    # the hand-over is recorded by the release itself, before `first` has even woken
    assert table.snapshot()["locks"][0]["holder"]["thread"] == "first"
    assert queue_of(table, "acc-00") == ["second", "third"]
    for thread in threads:
        thread.join(5)
    assert order == ["first", "second", "third"]
    assert table.snapshot()["locks"] == [] and table.snapshot()["wait_for"] == []


def test_a_thread_that_releases_and_asks_again_at_once_waits_its_turn():
    """With `threading.Lock` the releasing thread usually wins this race; here the queued waiter does."""
    table = LockTable(ACCOUNTS)
    lock = table.acquire("acc-00", None, CHECK)
    threads, order = queue_up(table, "acc-00", [("waiter", 5)])
    lock.release()
    assert not lock.acquire(0), "a newcomer took the lock from a queued waiter"
    assert not lock.try_acquire(0.001)  # a brief try queues too, and gives up behind the holder
    assert lock.acquire(5, CHECK)
    order.append("me")
    lock.release()
    threads[0].join(5)
    assert order == ["waiter", "me"]


def test_a_waiter_that_times_out_leaves_the_queue_and_the_next_one_moves_up():
    table = LockTable(ACCOUNTS)
    held = table.acquire("acc-00", None, CHECK)
    threads, order = queue_up(table, "acc-00", [("impatient", 0.15), ("patient", 5)])
    threads[0].join(5)
    assert order == ["impatient timed out"]
    assert queue_of(table, "acc-00") == ["patient"]
    held.release()
    threads[1].join(5)
    assert order == ["impatient timed out", "patient"]
    assert table.snapshot()["locks"] == []


def test_a_waiter_handed_the_lock_as_its_time_runs_out_keeps_it(monkeypatch):
    """Forced: the waiter's last slice has run out, and before it looks, the holder hands it the lock."""
    from bankapp.lab.locks import Wait

    timed_out, handed_over = threading.Event(), threading.Event()
    sleep = Wait.sleep

    def late_sleep(wait, timeout):
        woken = sleep(wait, timeout)
        if not woken and threading.current_thread().name == "late":
            timed_out.set()
            assert handed_over.wait(5)
        return woken

    monkeypatch.setattr(Wait, "sleep", late_sleep)
    table = LockTable(ACCOUNTS)
    held = table.acquire("acc-00", None, CHECK)
    outcome = {}

    def late():
        outcome["acquired"] = table["acc-00"].acquire(0.05, None)
        outcome["holder"] = table.holder("acc-00")
        if outcome["acquired"]:
            table["acc-00"].release()

    thread = threading.Thread(target=late, name="late")
    thread.start()
    assert timed_out.wait(5)
    held.release()  # hands the lock to "late", whose time is up
    handed_over.set()
    thread.join(5)
    assert outcome["acquired"] is True, "a lock handed over was dropped"
    assert outcome["holder"] == (thread.ident, "late")
    assert table.snapshot()["locks"] == []


def test_a_wait_can_be_cancelled_from_another_thread_and_raises_the_reason():
    """How an operator can break a permanent deadlock: the victim, waiting forever, is woken from outside."""
    table = LockTable(ACCOUNTS)
    held = table.acquire("acc-00", None, CHECK)
    outcome = {}

    def forever():
        try:
            table.acquire("acc-00", None, None)
        except RuntimeError as error:
            outcome["error"] = error

    thread = threading.Thread(target=forever, name="forever")
    thread.start()
    wait_for_queue(table, "acc-00", ["forever"])
    with table._graph:
        table._cancel(table._waits[thread.ident], RuntimeError("broken by the operator"))
    thread.join(5)
    assert str(outcome["error"]) == "broken by the operator"
    assert queue_of(table, "acc-00") == [] and table.snapshot()["wait_for"] == []
    held.release()
    assert table.snapshot()["locks"] == []


# The operator's way out of a deadlock nobody gives up


def test_the_operator_breaks_a_deadlock_that_would_last_forever():
    """lock_timeout_ms none: both wait forever and only report the cycle; `break_deadlocks` ends it."""
    table = LockTable(ACCOUNTS)
    holding = threading.Barrier(2, timeout=5)
    outcome = {}

    def worker(first, second):
        name = threading.current_thread().name
        lock = table.acquire(first, None, CHECK)
        try:
            holding.wait()
            try:
                table.acquire(second, None, CHECK).release()
                outcome[name] = "done"
            except DeadlockVictim as error:
                outcome[name] = error
        finally:
            lock.release()

    threads = [
        threading.Thread(target=worker, args=pair, name=f"worker-{i}")
        for i, pair in enumerate([("acc-00", "acc-01"), ("acc-01", "acc-00")])
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while not table.snapshot()["recent_deadlocks"]:
        assert time.monotonic() < deadline, "the deadlock was never reported"
        time.sleep(0.005)
    time.sleep(CHECK * 5)
    assert all(thread.is_alive() for thread in threads), "nobody may give up by itself"
    youngest = max(table._waits.values(), key=lambda w: w.since).thread
    broken = table.break_deadlocks()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    assert len(broken) == 1
    deadlock = broken[0]
    assert deadlock["broken"] is True and deadlock["broken_by"] == "operator"
    assert deadlock["victim"] == youngest and deadlock["accounts"] == ["acc-00", "acc-01"]
    victim = outcome[youngest]
    assert isinstance(victim, DeadlockVictim) and victim.deadlock is deadlock
    assert "The operator broke the deadlock and chose this request as the victim" in str(victim)
    assert sorted(o for o in outcome.values() if o == "done") == ["done"]
    assert table.detected == 1 and list(table.recent) == [deadlock]  # the record of the report, now broken
    snapshot = table.snapshot()
    assert snapshot["locks"] == snapshot["wait_for"] == snapshot["live_deadlocks"] == []
    assert table.break_deadlocks() == []  # nothing left to break


def test_breaking_deadlocks_leaves_a_wait_that_is_no_cycle_alone():
    table = LockTable(ACCOUNTS)
    held = table.acquire("acc-00", None, CHECK)
    waiter = threading.Thread(target=lambda: table.acquire("acc-00", None, CHECK).release(), name="patient")
    waiter.start()
    wait_for_queue(table, "acc-00", ["patient"])
    assert table.break_deadlocks() == []
    assert queue_of(table, "acc-00") == ["patient"]
    held.release()
    waiter.join(5)
    assert not waiter.is_alive() and table.snapshot()["locks"] == []
