"""Replays of an interleaving (`bankapp.interleave`), in process: the same result every run, the lesson each
scenario shows under each guard, bad schedules refused by name, and schedules nobody can finish ending in time.

Every replay here runs real threads through the lab's own code; the
determinism tests run each 20 times and compare the whole result (every
event, value and answer), not only the printed lines.
"""

from __future__ import annotations

import threading
import time

import pytest

from bankapp.interleave import InvalidReplay, InvalidSchedule, render, replay
from bankapp.lab.lab import Lab
from bankapp.settings import load

from ..harness import FAST

RUNS = 20


def settings(**overrides):
    return load({**FAST, **overrides}, environ={})


def replayed(scenario, guard, schedule=None, runs=RUNS, **overrides) -> tuple[dict, list[str]]:
    """Run the replay `runs` times; assert every result is the same; the result and its lines."""
    config = settings(**overrides)
    results = [replay(config, scenario, guard, schedule) for _ in range(runs)]
    different = [i for i, result in enumerate(results) if result != results[0]]
    assert not different, "\n".join([*render(results[0]), "--- differs from run", *render(results[different[0]])])
    return results[0], render(results[0])


def block(lines: list[str], first: str, count: int) -> list[str]:
    """The `count` lines from `first` on (which must be there)."""
    return lines[lines.index(first) : lines.index(first) + count]


def test_deposit_unsafe_loses_an_update_the_same_way_every_run():
    result, lines = replayed("deposit", "unsafe", "a.read b.read a.write b.write")
    assert lines == [
        "deposit with deposit_guard=unsafe: deposits, each a read-modify-write of one balance: without a guard, "
        "a write can erase another (a lost update)",
        "  in a scratch bank of its own (race_window_ms=0 lock_timeout_ms=2000 accounts=16 "
        "initial_balance=100000): the server's balances and counters are untouched",
        "  a: deposit 10 into acc-00  (steps: a.read a.write)",
        "  b: deposit 20 into acc-00  (steps: b.read b.write)",
        "schedule: a.read b.read a.write b.write",
        "",
        "  a.read    read acc-00 = 100000",
        "  b.read    read acc-00 = 100000",
        "  a.write   wrote acc-00 = 100010",
        "  b.write   wrote acc-00 = 100020",
        "",
        "a answers: balance 100010",
        "b answers: balance 100020",
        "final:    acc-00 = 100020",
        "  10 cents lost: 30 cents acknowledged, the balance grew 20: a write from a stale read erased a deposit "
        "(a lost update)",
    ]
    assert result["final"]["lost_updates"] == 10 and result["scratch"] is True


@pytest.mark.parametrize("guard", ["lock", "rlock", "semaphore"])
def test_an_excluding_guard_makes_the_second_deposit_wait_and_loses_nothing(guard):
    result, lines = replayed("deposit", guard, "a.read b.read a.write b.write")
    assert f"  b.read    blocks: a holds the {guard} guard of acc-00" in lines
    assert (
        f"  b.read    goes on: took the {guard} guard of acc-00 and the account lock of acc-00; read acc-00 = 100010"
        in lines
    )
    assert result["ran"] == ["a.read", "a.write", "b.read", "b.write"]  # the only order the guard allows
    assert result["final"]["balances"] == {"acc-00": 100030} and result["final"]["lost_updates"] == 0


def test_a_semaphore_of_two_lets_both_in_and_loses_an_update():
    result, lines = replayed("deposit", "semaphore", "a.read b.read a.write b.write", deposit_permits=2)
    assert "  b.read    took the semaphore guard of acc-00; read acc-00 = 100000" in lines
    assert result["final"]["lost_updates"] == 10
    assert result["settings"]["deposit_permits"] == 2


def test_acquire_and_release_can_be_named_and_a_third_thread_queues_in_order():
    _, lines = replayed("deposit", "lock", "a.acquire b.acquire a.read a.write a.release b.read b.write b.release")
    first = "  a.acquire took the lock guard of acc-00 and the account lock of acc-00"
    assert block(lines, first, 9) == [
        first,
        "  b.acquire blocks: a holds the lock guard of acc-00",
        "  a.read    read acc-00 = 100000",
        "  a.write   wrote acc-00 = 100010",
        "  a.release released the account lock of acc-00 and the lock guard of acc-00",
        "  b.acquire goes on: took the lock guard of acc-00 and the account lock of acc-00",
        "  b.read    read acc-00 = 100010",
        "  b.write   wrote acc-00 = 100030",
        "  b.release released the account lock of acc-00 and the lock guard of acc-00",
    ]
    result, _ = replayed("deposit", "lock", "a.read b.read c.read a.write b.write c.write")
    assert result["ran"] == ["a.read", "a.write", "b.read", "b.write", "c.read", "c.write"]  # b came first, so b goes
    assert result["final"]["balances"] == {"acc-00": 100060}


def test_withdraw_unsafe_overdraws_and_lock_refuses_the_second():
    result, lines = replayed("withdraw", "unsafe")
    assert result["schedule"] == "a.read b.read a.read a.write b.read b.write"
    assert block(lines, "a answers: balance 40000", 3) == [
        "a answers: balance 40000",
        "b answers: balance -20000",
        "final:    acc-00 = -20000",
    ]
    assert result["final"]["negative_accounts"] == ["acc-00"]
    result, lines = replayed("withdraw", "lock")
    assert "            not run: b.read b.write (b had already ended)" in lines
    assert result["answers"][1]["error"] == "insufficient-funds"
    assert result["final"]["balances"] == {"acc-00": 40000}


def test_batch_under_rlock_reenters_and_under_lock_waits_for_itself():
    result, lines = replayed("batch", "rlock")
    assert "  a.read    took the rlock guard of acc-00 (holds it 2 times: reentrant); read acc-00 = 100000" in lines
    assert result["final"]["balances"] == {"acc-00": 100003}
    result, lines = replayed("batch", "lock", lock_timeout_ms=200)
    first = "  a.read    took the lock guard of acc-00; read acc-00 = 100000"
    assert block(lines, first, 3) == [
        first,
        "  a.read    blocks: a already holds the lock guard of acc-00, which is not reentrant: a waits for itself",
        "            gives up: waited 200 ms for the lock guard of acc-00 (lock_timeout_ms)",
    ]
    assert result["answers"][0]["error"] == "self-deadlock"
    assert result["final"]["balances"] == {"acc-00": 100000}  # nothing of the refused batch stays


def test_naive_transfers_deadlock_and_the_thread_that_closed_the_cycle_is_the_victim():
    result, lines = replayed("transfer", "naive")
    assert "  a.read    blocks: b holds the account lock of acc-01" in lines
    assert "  b.read    blocks: a holds the account lock of acc-00" in lines
    assert (
        "            gives up: deadlock: b holds acc-01 and waits for acc-00; a holds acc-00 and waits for acc-01. "
        "The deadlock detector chose b as the victim: it rolls back" in lines
    )
    assert "            read acc-01 = 99995; put back acc-01 = 100000; released the account lock of acc-01" in lines
    assert result["answers"][0]["ok"] and result["answers"][1]["error"] == "deadlock"
    assert result["final"]["total"] == result["final"]["expected_total"] and result["final"]["deadlocks"] == 1


def test_three_naive_transfers_in_a_ring_deadlock_in_a_cycle_of_three():
    schedule = " ".join(
        f"{t}.{step}" for step in ["read", "read", "write", "read", "write", "read"] for t in "abc"
    )  # each thread's first lock, its debit, then each asks for the next one's lock
    result, _ = replayed("transfer", "naive", schedule)
    victim = result["answers"][2]
    assert victim["error"] == "deadlock" and victim["victim"] == "c"
    assert [step["thread"] for step in victim["cycle"]] == ["c", "a", "b"]
    assert result["final"]["balances"] == {"acc-00": 99995, "acc-01": 100000, "acc-02": 100005}


def test_ordered_transfers_cannot_deadlock():
    result, lines = replayed("transfer", "ordered")
    assert "  b.read    blocks: a holds the account lock of acc-00" in lines
    assert all(answer["ok"] for answer in result["answers"]) and result["final"]["deadlocks"] == 0


def test_an_audit_between_debit_and_credit_sees_money_in_flight_under_release_first_only():
    result, lines = replayed("audit", "release-first")
    assert result["schedule"] == "a.read a.read a.write b.read a.read a.write a.read"
    assert (
        "  b.read    took the 16 account locks, acc-00 .. acc-15; read acc-00 = 99995, acc-01 .. acc-15 = 100000; "
        "released the 16 account locks, acc-15 .. acc-00" in lines
    )
    assert result["answers"][1]["result"]["difference"] == -5
    result, lines = replayed("audit", "ordered")
    assert "  b.read    blocks: a holds the account lock of acc-00" in lines
    assert result["answers"][1]["result"]["difference"] == 0


@pytest.mark.parametrize(
    ("scenario", "guard"),
    [("transfer", "release-first"), ("transfer", "unsafe"), ("audit", "naive"), ("audit", "unsafe")],
)
def test_the_other_policies_replay_the_same_every_run_too(scenario, guard):
    result, _ = replayed(scenario, guard)
    assert result["guard"] == guard


def test_a_replay_shows_the_race_window_it_ran_with_and_still_gives_the_same_result():
    result, _ = replayed("deposit", "unsafe", runs=3, race_window_ms=20)
    assert result["settings"]["race_window_ms"] == 20 and result["final"]["lost_updates"] == 10


BAD_SCHEDULES = [
    pytest.param("", None, "the schedule is empty", id="empty"),
    pytest.param("   ", None, "the schedule is empty", id="blank"),
    pytest.param("a.read b.read d.read", "d.read", "there is no thread d; this scenario runs a, b and c", id="thread"),
    pytest.param("a.read b.jump a.write b.write", "b.jump", "thread b has no step jump", id="step"),
    pytest.param(
        "a.read a.read b.read a.write b.write", "a.read", "a.read is named twice, but thread a reads once", id="twice"
    ),
    pytest.param("a.read b.read b.write", "a.write", "a.write is missing: thread a writes once", id="missing"),
    pytest.param("a.write a.read b.read b.write", "a.write", "a.write comes too early", id="order"),
    pytest.param("a.read", "b", "needs at least 2 threads", id="one-thread"),
    pytest.param(
        "a.read c.read a.write c.write", None, "thread b is missing: the schedule names a and c", id="skipped-thread"
    ),
    pytest.param("a.read b.read a.write b.write a", "a", "is not THREAD.STEP", id="not-a-step"),
    pytest.param(
        "a.acquire a.read a.write b.read b.write",
        "a.acquire",
        "a.acquire is named but a.release is not",
        id="half-the-locks",
    ),
]


@pytest.mark.parametrize(("schedule", "step", "says"), BAD_SCHEDULES)
def test_a_bad_schedule_is_refused_by_name_before_anything_runs(schedule, step, says):
    guard = "lock"  # a guard with lock steps, so that half-named locks can be refused
    with pytest.raises(InvalidSchedule) as refused:
        replay(settings(), "deposit", guard, schedule)
    assert says in str(refused.value)
    if step is not None:
        assert step in str(refused.value) and (refused.value.step or "").startswith(step)
    assert not [t for t in threading.enumerate() if t.name.startswith("interleave-")]


def test_a_lock_step_under_unsafe_is_an_unknown_step():
    with pytest.raises(InvalidSchedule, match=r"a.acquire: thread a has no step acquire; its steps are read and write"):
        replay(settings(), "deposit", "unsafe", "a.acquire a.read a.write a.release b.read b.write")


def test_an_unknown_scenario_or_guard_is_refused_by_name():
    with pytest.raises(InvalidReplay, match="scenario: no scenario 'juggle'") as refused:
        replay(settings(), "juggle", None, None)
    assert refused.value.field == "scenario"
    with pytest.raises(InvalidReplay, match="transfer runs under the transfer policies naive, ordered") as refused:
        replay(settings(), "transfer", "backoff", None)
    assert refused.value.field == "guard"
    with pytest.raises(InvalidReplay, match="deposit runs under the deposit guards unsafe, lock, rlock or semaphore"):
        replay(settings(), "deposit", "naive", None)


def test_without_a_guard_the_replay_runs_under_the_one_in_force():
    assert replay(settings(deposit_guard="rlock"), "deposit")["guard"] == "rlock"
    assert replay(settings(transfer_policy="ordered"), "audit")["guard"] == "ordered"


def timed(scenario, guard, **overrides) -> tuple[dict, float]:
    started = time.monotonic()
    result = replay(settings(**overrides), scenario, guard)
    return result, time.monotonic() - started


def test_a_deadlock_nobody_may_give_up_ends_in_time_broken_as_the_operator_does():
    result, took = timed("transfer", "naive", lock_timeout_ms=None)
    lines = render(result)
    assert took < 5, took
    assert (
        "            stuck: a waits for the account lock of acc-01 (b holds it); b waits for the account lock of "
        "acc-00 (a holds it); nobody may give up (lock_timeout_ms none)" in lines
    )
    assert any(
        "the replay breaks it as the operator does (POST /admin/break-deadlocks): 1 broken" in line for line in lines
    )
    assert result["answers"][1]["broken_by"] == "operator" and result["answers"][0]["ok"]
    again, _ = timed("transfer", "naive", lock_timeout_ms=None)
    assert again == result


def test_a_self_deadlock_ends_within_lock_timeout_ms_or_by_the_operator_under_none():
    result, took = timed("batch", "lock", lock_timeout_ms=300)
    assert 0.3 <= took < 5, took
    assert result["answers"][0]["error"] == "self-deadlock"
    result, took = timed("batch", "semaphore", lock_timeout_ms=None)
    assert took < 5, took
    assert result["answers"][0]["error"] == "deadlock" and result["answers"][0]["broken_by"] == "operator"


def test_no_replay_thread_outlives_its_replay():
    for scenario, guard in [("deposit", "lock"), ("transfer", "naive"), ("batch", "lock")]:
        replay(settings(lock_timeout_ms=100), scenario, guard)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("interleave-")]


def test_the_steps_a_schedule_names_are_those_the_code_takes():
    """A rehearsal that missed a call would leave a step unrun, or a call unpaused: every named step ran, once."""
    for scenario, guard in [("deposit", "lock"), ("withdraw", "unsafe"), ("batch", "rlock"), ("audit", "ordered")]:
        result = replay(settings(), scenario, guard)
        assert sorted(result["ran"]) == sorted(result["schedule"].split()), (scenario, guard)
        assert not [e for e in result["events"] if e.get("after_plan")], (scenario, guard)


def test_a_replay_gives_the_same_result_while_the_lab_it_runs_in_is_busy():
    """The replay's lab is its own: deposits hammering another lab (the server's) change nothing in it."""
    quiet = replay(settings(), "deposit", "lock")
    busy = Lab(settings())
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            busy.bank.deposit("acc-00", 1)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        results = [replay(settings(), "deposit", "lock") for _ in range(RUNS)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert all(result == quiet for result in results)
    assert busy.store.snapshot()["acc-00"] > 100_000


def test_the_docs_show_exactly_what_these_replays_print():
    """docs/interleave.md quotes real replays at the default settings; a replay prints the same every run, so the
    quote must be exact."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "interleave.md").read_text()
    defaults = load({}, environ={})
    for scenario, guard, schedule in [
        ("deposit", "unsafe", "a.read b.read a.write b.write"),
        ("deposit", "lock", "a.read b.read a.write b.write"),
        ("transfer", "naive", None),
    ]:
        printed = "\n".join(render(replay(defaults, scenario, guard, schedule)))
        assert f"```\n{printed}\n```" in page, (scenario, guard)
    with pytest.raises(InvalidSchedule) as refused:
        replay(defaults, "deposit", "unsafe", "a.read b.read a.write b.jump")
    assert f"```\nbankapp interleave: {refused.value}\n```" in page
