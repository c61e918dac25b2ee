"""The explorer under any code built on `threading`: a plain module's own Lock, RLock, Condition and Event,
swapped in underneath it, every schedule tried."""

import re
import threading

import pytest

from bankapp.explore.primitives import Cell, Event, Lock, RLock, patched
from bankapp.explore.threads import explore_threads, replay_threads
from tests.explore import subject


def test_an_unguarded_counter_loses_an_increment_and_a_lock_keeps_them_all():
    def run(guarded: bool, reduce: bool = True) -> dict:
        return explore_threads(
            lambda: subject.Counter(guarded),
            [lambda c: c.increment()] * 2,
            lambda c: c.value.value == 2,
            modules=(subject,),
            reduce=reduce,
        )

    unguarded, guarded = run(False), run(True)
    assert unguarded["complete"] and unguarded["outcomes"]["invariant"] == 4
    assert unguarded["counterexample"]["schedule"] == "a.read b.read a.write b.write"
    assert guarded["complete"] and guarded["counterexample"] is None and guarded["outcomes"] == {"ok": 8}
    every = run(True, reduce=False)
    assert guarded["schedules"] + guarded["equivalent"] == every["schedules"] == 8


def test_the_module_gets_its_threading_back_after_the_exploration():
    with patched(subject):
        assert subject.threading.Lock is Lock
    assert subject.threading is threading


def semaphore_users(threads: int) -> dict:
    return explore_threads(
        lambda: subject.Semaphore(1),
        [lambda s: s.use()] * threads,
        lambda s: s.peak <= 1,
        modules=(subject,),
    )


def test_a_semaphore_from_a_condition_never_lets_more_in_than_its_permits():
    result = semaphore_users(2)
    assert result["complete"] and result["counterexample"] is None
    assert result["schedules"] > 1 and result["equivalent"] > 0


@pytest.mark.slow
def test_a_semaphore_from_a_condition_holds_for_three_threads_too():
    result = semaphore_users(3)
    assert result["complete"] and result["counterexample"] is None
    assert result["schedules"] > 100


def test_a_release_that_forgets_to_notify_leaves_a_waiter_asleep_forever():
    result = explore_threads(
        lambda: subject.Semaphore(1, notify=False),
        [lambda s: s.use()] * 2,
        lambda s: True,
        modules=(subject,),
    )
    example = result["counterexample"]
    assert example["outcome"] == "deadlock"
    assert "wait" in example["schedule"]
    assert example["stuck"][0]["waits_for"].startswith("Condition")


def test_two_locks_taken_in_opposite_orders_deadlock_in_some_schedules_only():
    result = explore_threads(
        lambda: (subject.threading.Lock(), subject.threading.Lock()),
        [lambda locks: subject.two_locks(*locks), lambda locks: subject.two_locks(*reversed(locks))],
        lambda locks: True,
        modules=(subject,),
    )
    assert result["complete"]
    assert result["outcomes"]["deadlock"] > 0 and result["outcomes"]["ok"] > 0
    assert {s["thread"] for s in result["counterexample"]["stuck"]} == {"a", "b"}


@pytest.mark.parametrize(("make", "outcome"), [(Lock, "self-deadlock"), (RLock, "ok")])
def test_a_lock_taken_twice_by_its_holder_waits_for_itself_and_an_rlock_does_not(make, outcome):
    result = explore_threads(make, [subject.reenter], lambda lock: True)
    assert list(result["outcomes"]) == [outcome]


def test_an_event_wakes_its_waiter_and_a_timed_wait_gives_up_only_when_nothing_else_can_move():
    def waiter(state):
        state["seen"] = state["event"].wait()

    def setter(state):
        state["event"].set()

    woken = explore_threads(lambda: {"event": Event()}, [waiter, setter], lambda s: s["seen"] is True)
    assert woken["complete"] and woken["counterexample"] is None

    def impatient(state):
        state["seen"] = state["event"].wait(timeout=5)

    alone = explore_threads(lambda: {"event": Event()}, [impatient], lambda s: s["seen"] is False)
    assert alone["outcomes"] == {"ok": 1}


def test_outside_an_exploration_the_primitives_are_real_ones():
    lock, event = Lock(), Event()
    assert lock.acquire(timeout=0.01)
    assert not lock.acquire(timeout=0.01)
    lock.release()
    threading.Thread(target=event.set).start()
    assert event.wait(5)


def test_a_loop_that_never_ends_stops_the_search_at_a_bound_and_says_where():
    def spin(flag):
        while not flag.get():  # waits for a flag nobody sets: every look is a step
            pass

    result = explore_threads(lambda: Cell(False, "flag"), [spin, lambda flag: None], lambda flag: True)
    assert not result["complete"]
    assert result["stopped"].startswith("hang: a schedule took") and "a.read" in result["stopped"]


@pytest.mark.parametrize("guarded", [False, True])
def test_a_counterexample_replays_to_the_same_outcome_and_a_bad_schedule_is_named(guarded):
    explored = explore_threads(
        lambda: subject.Counter(False),
        [lambda c: c.increment()] * 2,
        lambda c: c.value.value == 2,
        modules=(subject,),
    )
    schedule = explored["counterexample"]["schedule"]
    setup = lambda: subject.Counter(guarded)  # noqa: E731
    if not guarded:
        replayed = replay_threads(setup, [lambda c: c.increment()] * 2, lambda c: c.value.value == 2, schedule)
        assert replayed["outcome"] == "invariant" and replayed["ran"] == schedule
        return
    with pytest.raises(ValueError, match=re.escape("a.read: that thread's step there is a.acquire")):
        replay_threads(setup, [lambda c: c.increment()] * 2, lambda c: True, schedule, modules=(subject,))


def test_a_deadlock_replays_as_a_deadlock():
    setup = lambda: (subject.threading.Lock(), subject.threading.Lock())  # noqa: E731
    workers = [lambda locks: subject.two_locks(*locks), lambda locks: subject.two_locks(*reversed(locks))]
    explored = explore_threads(setup, workers, lambda locks: True, modules=(subject,))
    replayed = replay_threads(
        setup, workers, lambda locks: True, explored["counterexample"]["schedule"], modules=(subject,)
    )
    assert replayed["outcome"] == "deadlock" and len(replayed["stuck"]) == 2
