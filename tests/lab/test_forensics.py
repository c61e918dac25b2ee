"""Race forensics in the domain: who erased whom, named exactly, and the cents adding up to lost_updates.

Interleavings are spelled out step by step (`Actor`: a thread of its own
per writer, driven in the test's order) or forced with barriers; totals are
checked against the ledger's `lost_updates` under real threads.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest

from bankapp.lab.forensics import Races, calling, sentence
from bankapp.lab.forensics.chain import History
from bankapp.lab.store import MemoryStore

from ..harness import Actor, MeetingStore, make_lab, run_together

INITIAL = 100_000


@pytest.fixture
def store():
    return MemoryStore(["acc-00", "acc-01"], INITIAL)


@pytest.fixture
def actors():
    made: dict[str, Actor] = {}

    def actor(name: str) -> Actor:
        made[name] = made.get(name) or Actor(name)
        return made[name]

    yield actor
    for each in made.values():
        each.close()


def read(actor, store, request_id, account="acc-00"):
    def step():
        with calling(request_id, "deposit"):
            return store.read(account)

    return actor.do(step)


def write(actor, store, request_id, delta, read_balance, account="acc-00"):
    """Write `read_balance + delta`, computed from what this actor read (a read-modify-write, split in two)."""

    def step():
        with calling(request_id, "deposit"):
            store.write(account, read_balance + delta)

    actor.do(step)


def lost(store, opening=INITIAL, deltas=()):
    return sum(deltas) - (store.snapshot()["acc-00"] - opening)


def test_a_triple_overwrite_names_each_write_once(store, actors):
    """a, b and c all read v0; a writes v1; b writes over v1 (erases a); c writes over v2 (erases b, not a again)."""
    a, b, c = actors("a"), actors("b"), actors("c")
    seen = {name: read(actor, store, name) for name, actor in (("a", a), ("b", b), ("c", c))}
    write(a, store, "a", 1, seen["a"])
    write(b, store, "b", 2, seen["b"])
    write(c, store, "c", 3, seen["c"])
    report = store.races()
    first, second = reversed(report["races"])  # newest first
    assert [w["request_id"] for w in first["erased"]] == ["a"] and first["eraser"]["request_id"] == "b"
    assert [w["request_id"] for w in second["erased"]] == ["b"] and second["eraser"]["request_id"] == "c"
    assert (first["cents"], second["cents"]) == (1, 2)
    assert report["lost_updates"] == 3 == lost(store, deltas=(1, 2, 3))
    assert report["erasures"] == 2 and report["writes_erased"] == 2 and report["writes_revived"] == 0
    assert first["eraser"]["read_version"] == 0 and first["overwrote"] == {"version": 1, "balance": INITIAL + 1}
    assert second["overwrote"] == {"version": 2, "balance": INITIAL + 2}


def test_a_write_that_read_an_erased_deposit_brings_it_back(store, actors):
    """w reads v1 (a's deposit); x, which read v0, erases a; w writes over x: x is erased, a revived."""
    a, x, w = actors("a"), actors("x"), actors("w")
    x_read = read(x, store, "x")
    write(a, store, "a", 10, read(a, store, "a"))
    w_read = read(w, store, "w")
    assert w_read == INITIAL + 10
    write(x, store, "x", 20, x_read)
    write(w, store, "w", 40, w_read)
    assert store.snapshot()["acc-00"] == INITIAL + 10 + 40  # a is back, x is gone
    newest, oldest = store.races()["races"]
    assert [e["request_id"] for e in oldest["erased"]] == ["a"] and oldest["cents"] == 10
    assert [e["request_id"] for e in newest["erased"]] == ["x"]
    assert [e["request_id"] for e in newest["revived"]] == ["a"]
    assert newest["cents"] == 20 - 10
    assert store.races()["lost_updates"] == 20 == lost(store, deltas=(10, 20, 40))
    assert store.races()["writes_revived"] == 1
    assert "it brought back deposit a (10 cents), which an earlier write had erased" in newest["sentence"]


def test_a_write_that_read_the_head_erases_nothing_and_neither_does_a_blind_one(store, actors):
    a = actors("a")
    write(a, store, "a", 5, read(a, store, "a"))
    a.do(lambda: store.write("acc-00", 7))  # no read first: taken as a write over what it found
    assert store.races()["erasures"] == 0 and store.snapshot()["acc-00"] == 7


def test_a_reset_forgets_the_races_and_versions_only_go_forward(store, actors):
    a, b = actors("a"), actors("b")
    ra, rb = read(a, store, "a"), read(b, store, "b")
    write(a, store, "a", 1, ra)
    write(b, store, "b", 1, rb)
    assert store.races()["erasures"] == 1
    store.reset()
    assert store.races()["erasures"] == 0 and store.races()["races"] == []
    write(a, store, "a", 1, read(a, store, "a"))
    assert store.races()["erasures"] == 0
    assert store._rows["acc-00"] == (INITIAL + 1, 4)  # two writes, the reset, one write


def test_recent_erasures_are_bounded_and_the_totals_stay_exact(store, actors):
    store.recorder = Races(keep=3)
    a, b = actors("a"), actors("b")
    for round_ in range(5):
        ra, rb = read(a, store, f"a{round_}"), read(b, store, f"b{round_}")
        write(a, store, f"a{round_}", 1, ra)
        write(b, store, f"b{round_}", 1, rb)
    report = store.races(limit=10)
    assert report["erasures"] == 5 and report["lost_updates"] == 5 == lost(store, deltas=[1] * 10)
    assert [event["eraser"]["request_id"] for event in report["races"]] == ["b4", "b3", "b2"]
    assert [event["id"] for event in report["races"]] == [5, 4, 3]
    assert len(store.races(limit=1)["races"]) == 1


def test_a_read_older_than_the_history_is_exact_in_cents_and_says_its_names_are_incomplete(store, actors):
    store._history = History(keep=4)
    slow, busy = actors("slow"), actors("busy")
    slow_read = read(slow, store, "slow")
    for n in range(10):
        write(busy, store, f"busy{n}", 3, read(busy, store, f"busy{n}"))
    write(slow, store, "slow", 1, slow_read)
    (event,) = store.races()["races"]
    assert event["complete"] is False and event["cents"] == 30 == lost(store, deltas=[3] * 10 + [1])
    assert [w["request_id"] for w in event["erased"]] == ["busy9", "busy8", "busy7"]  # the 4 kept: these and slow
    assert "no longer all remembered" in event["sentence"]
    assert store.races()["incomplete"] == 1


ReadersMeet = partial(MeetingStore, on="read", timeout=0.5)


def test_a_forced_race_names_exactly_the_erased_deposit_and_its_eraser():
    lab = make_lab(ReadersMeet, deposit_guard="unsafe", race_window_ms=0)

    def deposit(request_id, amount):
        with calling(request_id, "deposit"):
            return lab.bank.deposit("acc-00", amount)

    run_together([lambda: deposit("alpha", 100), lambda: deposit("beta", 7)], names=["teller-a", "teller-b"])
    report = lab.store.races()
    (event,) = report["races"]
    eraser, (erased,) = event["eraser"], event["erased"]
    assert {eraser["request_id"], erased["request_id"]} == {"alpha", "beta"}
    amounts = {"alpha": 100, "beta": 7}
    threads = {"alpha": "teller-a", "beta": "teller-b"}
    assert erased["delta"] == amounts[erased["request_id"]] == event["cents"] == report["lost_updates"]
    assert eraser["delta"] == amounts[eraser["request_id"]]
    assert (eraser["thread"], erased["thread"]) == (threads[eraser["request_id"]], threads[erased["request_id"]])
    assert eraser["read_version"] == erased["read_version"] == 0 and erased["version"] == 1
    assert event["overwrote"]["version"] == 1 and eraser["version"] == 2
    assert eraser["read_balance"] == erased["read_balance"] == INITIAL
    assert erased["read_at"] <= erased["wrote_at"] <= eraser["wrote_at"]
    assert lab.ledger.report(lab.store.snapshot())["lost_updates"] == report["lost_updates"]
    said = sentence(event)
    assert said.startswith(f"deposit {eraser['request_id']} on {eraser['thread']} read 100,000 (v0) and wrote ")
    assert f"over v1, written by deposit {erased['request_id']} on {erased['thread']} " in said
    assert said.endswith(f"earlier: its {erased['delta']} cents are gone.")


@pytest.mark.parametrize(("guard", "permits"), [("lock", 1), ("rlock", 1), ("semaphore", 1)])
def test_a_guard_that_excludes_records_no_erasure(guard, permits):
    lab = make_lab(ReadersMeet, deposit_guard=guard, deposit_permits=permits)
    run_together([lambda: lab.bank.deposit("acc-00", 5)] * 2)
    assert lab.store.races()["erasures"] == 0 and lab.store.races()["races"] == []


def lab_keeping_every_erasure(**settings):
    """A lab whose recorder keeps every erasure, so that a test can add them up per account."""
    lab = make_lab(**settings)
    lab.store.recorder = Races(keep=100_000)
    return lab


def books_agree(lab) -> dict:
    """At rest: the cents the erasures name equal lost_updates, in all and per account."""
    report = lab.store.races()
    ledger = lab.ledger.report(lab.store.snapshot())
    assert report["lost_updates"] == ledger["lost_updates"]
    by_account = Counter()
    for event in lab.store.races(limit=report["erasures"])["races"]:
        by_account[event["account"]] += event["cents"]
        if event["complete"]:
            named = sum(w["delta"] for w in event["erased"]) - sum(w["delta"] for w in event["revived"])
            assert named == event["cents"], event
    assert report["erasures"] <= report["kept"], "every erasure still listed, to check per account"
    assert {a: n for a, n in by_account.items() if n} == {
        a: row["lost_updates"] for a, row in ledger["per_account"].items() if row["lost_updates"]
    }
    return report


@pytest.mark.parametrize(("guard", "permits"), [("unsafe", 1), ("semaphore", 4), ("lock", 1)])
def test_under_sixteen_threads_the_cents_named_add_up_to_lost_updates(guard, permits):
    lab = lab_keeping_every_erasure(deposit_guard=guard, deposit_permits=permits, race_window_ms=1)

    def client(n):
        for i in range(5):
            lab.bank.deposit(f"acc-0{(n + i) % 2}", 1 + n)

    run_together([partial(client, n) for n in range(16)])
    report = books_agree(lab)
    assert (report["erasures"] > 0) == (guard != "lock")


@pytest.mark.parametrize("policy", ["unsafe", "naive", "release-first"])
def test_deposits_withdrawals_batches_and_transfers_together_add_up(policy):
    """Every writer of a balance is versioned: transfer legs, their rollbacks, batch amounts and undos."""
    lab = lab_keeping_every_erasure(
        deposit_guard="unsafe", transfer_policy=policy, race_window_ms=1, lock_timeout_ms=300
    )

    def depositor(n):
        with calling(f"d{n}", "deposit"):
            for i in range(8):
                lab.bank.deposit(f"acc-0{i % 3}", 10 + n)
                lab.bank.withdraw(f"acc-0{(i + 1) % 3}", 3)
                lab.bank.batch_deposit(f"acc-0{(i + 2) % 3}", [1, 2])

    def transferrer(n):
        with calling(f"t{n}", "transfer"):
            for i in range(8):
                source, target = (f"acc-0{i % 3}", f"acc-0{(i + 1) % 3}") if n % 2 else ("acc-01", "acc-00")
                try:
                    lab.transfers.transfer(source, target, 5 + n)
                except Exception as error:  # deadlock victims and timeouts roll back: that is part of the test
                    assert type(error).__name__ in {"DeadlockVictim", "GuardTimeout"}, error

    run_together([partial(depositor, n) for n in range(6)] + [partial(transferrer, n) for n in range(6)])
    report = books_agree(lab)
    assert report["erasures"] > 0


def written(request_id, thread, version, balance, delta, wrote_at, pid=4242, operation="deposit"):
    return {
        "request_id": request_id,
        "operation": operation,
        "thread": thread,
        "pid": pid,
        "account": "acc-00",
        "read_version": version - 1,
        "read_balance": balance - delta,
        "delta": delta,
        "version": version,
        "balance": balance,
        "read_at": wrote_at - 0.001,
        "wrote_at": wrote_at,
    }


def test_an_erasure_in_words_as_the_issue_tells_it():
    erased = written("9c1b", "Thread-3", 313, 100_413, 1, 1000.0)
    eraser = {**written("3f2a", "Thread-7", 314, 100_413, 1, 1000.0008), "read_version": 312}
    event = {"cents": 1, "complete": True, "eraser": eraser, "erased": [erased], "revived": []}
    event["overwrote"] = {"version": 313, "balance": 100_413}
    assert sentence(event) == (
        "deposit 3f2a on Thread-7 read 100,412 (v312) and wrote 100,413 over v313, written by deposit 9c1b on "
        "Thread-3 0.8 ms earlier: its 1 cent is gone."
    )
    # another worker, a long id, a withdrawal: the pid is named, the id shortened, the debit undone
    erased = {**erased, "pid": 77, "operation": "withdrawal", "delta": -500, "request_id": "0123456789abcdef"}
    assert sentence({**event, "erased": [erased], "cents": -500}).endswith(
        "written by withdrawal 01234567 on Thread-3 of pid 77 0.8 ms earlier: its debit of 500 cents is undone."
    )
    three = [erased, written("aa", "T1", 312, 100_412, 2, 999.0), written("bb", "T2", 311, 100_410, 3, 998.0)]
    said = sentence({**event, "erased": three, "cents": -495})
    assert said.endswith(", and 2 more writes since v312 (deposit aa, deposit bb): the balance is 495 cents too high.")


def test_a_forked_child_records_its_own_pid_not_its_parents():
    """The writer's thread and pid are kept per thread after its first write; a forked child (a gunicorn
    worker) starts afresh, so its writes name its own pid."""
    import os
    import threading

    from bankapp.lab.forensics import thread_and_pid

    assert thread_and_pid() == (threading.current_thread().name, os.getpid())  # now kept for this thread
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, b"yes" if thread_and_pid()[1] == os.getpid() else b"no")
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        assert answer.read() == b"yes"
