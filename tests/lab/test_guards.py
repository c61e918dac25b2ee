"""Guards, driven by real threads: what each excludes, and what none may do."""

import threading

import pytest

from bankapp.lab.guards import GUARDS, GuardSet, GuardTimeout, SemaphoreGuard, hold, make_guard

from ..harness import held_by_another_thread, in_another_thread, wait_until


@pytest.mark.parametrize("kind", sorted(GUARDS))
def test_no_guard_releases_what_it_did_not_acquire(kind):
    guard = make_guard(kind, "acc-00")
    with pytest.raises(RuntimeError, match="does not hold"):
        guard.release()
    assert guard.acquire(timeout=1)
    refused = in_another_thread(guard.release, expect=(RuntimeError,))
    assert isinstance(refused, RuntimeError), "a thread that does not hold the guard released it"
    guard.release()
    assert guard.holders() == {}


@pytest.mark.parametrize("kind", ["lock", "semaphore"])
def test_non_reentrant_guard_self_deadlocks_and_times_out(kind):
    guard = make_guard(kind, "acc-00", permits=1)
    with hold(guard, 1), pytest.raises(GuardTimeout) as caught, hold(guard, 0.05):
        pass
    assert caught.value.self_deadlock
    assert "self-deadlock" in str(caught.value)
    assert guard.holders() == {}


def test_rlock_lets_its_owner_in_again():
    guard = make_guard("rlock", "acc-00")
    with hold(guard, 1), hold(guard, 0.05):
        assert guard.holders() == {threading.get_ident(): 2}
    assert guard.holders() == {}


def test_lock_acquire_times_out_when_another_thread_holds_it():
    guard = make_guard("lock", "acc-00")
    taken, done = threading.Event(), threading.Event()

    def holder():
        with hold(guard, 1):
            taken.set()
            done.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait(5)
    assert guard.acquire(timeout=0.05) is False
    with pytest.raises(GuardTimeout) as caught, hold(guard, 0.05):
        pass
    assert not caught.value.self_deadlock
    done.set()
    thread.join(5)
    assert guard.acquire(timeout=1)
    guard.release()


def test_semaphore_admits_up_to_its_permits_and_no_more():
    guard = SemaphoreGuard("shop", permits=4)
    inside = threading.Barrier(5, timeout=5)
    leave = threading.Event()

    def enter():
        with hold(guard, 1):
            inside.wait()
            leave.wait(5)

    threads = [threading.Thread(target=enter) for _ in range(4)]
    for thread in threads:
        thread.start()
    inside.wait()  # all four are in at once
    assert guard.available_permits == 0
    assert len(guard.holders()) == 4
    assert guard.acquire(timeout=0.05) is False
    leave.set()
    for thread in threads:
        thread.join(5)
    assert guard.available_permits == 4


def test_guard_set_keeps_one_object_per_kind_and_key():
    guards = GuardSet()
    first = guards.get("lock", "acc-00")
    assert guards.get("lock", "acc-00") is first
    assert guards.get("lock", "acc-01") is not first
    assert guards.get("rlock", "acc-00") is not first
    assert guards.get("semaphore", "acc-00", 4) is not guards.get("semaphore", "acc-00", 1)


def test_unknown_guard_name_is_refused():
    with pytest.raises(ValueError, match="unknown guard 'mutex'"):
        make_guard("mutex")


@pytest.mark.parametrize(
    ("kind", "permits", "excludes"),
    [("unsafe", 1, False), ("lock", 1, True), ("rlock", 1, True), ("semaphore", 1, True), ("semaphore", 4, False)],
)
def test_excludes_says_whether_one_thread_at_most_is_inside(kind, permits, excludes):
    guard = make_guard(kind, "acc-00", permits)
    assert guard.excludes is excludes
    assert guard.acquire(0)
    # a second thread gets in exactly when the guard does not exclude
    assert in_another_thread(lambda: guard.acquire(0)) is (not excludes)


# The operator's way out of a self-deadlock nobody else can end


class Broken(Exception):
    pass


def operator(stuck, victim):
    return Broken(f"{victim.thread} broken; stuck: {sorted(w.thread for w in stuck)}")


@pytest.mark.parametrize("kind", ["lock", "semaphore"])
def test_a_self_deadlock_that_waits_forever_is_broken_from_outside(kind):
    guard = make_guard(kind, "acc-00", permits=1)
    outcome = {}

    def batch():
        with hold(guard, None):
            try:
                with hold(guard, None):  # waits for itself, and no timeout will end it
                    outcome["inner"] = "entered"
            except Broken as error:
                outcome["error"] = error

    thread = threading.Thread(target=batch, name="batch")
    thread.start()
    wait_until(lambda: guard.waiting() == [thread.ident])
    error = guard.break_self_deadlock(operator)
    thread.join(5)
    assert not thread.is_alive()
    assert outcome == {"error": error}
    assert str(error) == "batch broken; stuck: ['batch']"
    assert guard.holders() == {} and guard.waiting() == []
    assert guard.acquire(0)  # nothing is left held
    guard.release()


def test_two_holders_of_a_semaphore_that_each_wait_for_another_permit_lose_one_victim():
    guard = make_guard("semaphore", "acc-00", permits=2)
    both_hold = threading.Barrier(2, timeout=5)
    outcome = {}

    def batch(name):
        with hold(guard, None):
            both_hold.wait()
            try:
                with hold(guard, None):
                    outcome[name] = "done"
            except Broken:
                outcome[name] = "victim"

    threads = [threading.Thread(target=batch, args=(name,), name=name) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(guard.waiting()) == 2)
    assert guard.break_self_deadlock(operator) is not None
    for thread in threads:
        thread.join(5)
    assert sorted(outcome.values()) == ["done", "victim"]  # the victim's permit let the other one in
    assert guard.available_permits == 2


def test_a_wait_behind_a_running_holder_is_no_self_deadlock_and_is_left_alone():
    guard = make_guard("lock", "acc-00")
    with held_by_another_thread(guard):
        waiter = threading.Thread(target=lambda: guard.acquire(5) and guard.release(), name="waiter")
        waiter.start()
        wait_until(lambda: guard.waiting() == [waiter.ident])
        assert guard.break_self_deadlock(operator) is None
    waiter.join(5)
    assert not waiter.is_alive() and guard.holders() == {}


def test_rlock_is_never_broken():
    guard = make_guard("rlock", "acc-00")
    with hold(guard, 1), hold(guard, 1):
        assert guard.break_self_deadlock(operator) is None
