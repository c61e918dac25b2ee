"""Forensics on the postgres store: two labs are two workers, and the races are named fleet-wide.

Every write logs itself in the database, so a write in one worker that
erases a write of another names it as exactly as one thread names another.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest

from bankapp.lab.forensics import calling

from ..harness import Actor, run_together

pytestmark = pytest.mark.postgres

INITIAL = 100_000


@pytest.fixture
def actors():
    made: list[Actor] = []

    def actor(name: str) -> Actor:
        made.append(Actor(name))
        return made[-1]

    yield actor
    for each in made:
        each.close()


def step(actor, request_id, fn):
    def run():
        with calling(request_id, "deposit"):
            return fn()

    return actor.do(run)


def test_a_worker_names_the_deposit_another_worker_erased(make_pg_lab, actors):
    """a (worker 1) and b (worker 2) read v0; a writes v1; b writes over it. Then c erases b, not a again."""
    one, two = make_pg_lab(deposit_guard="unsafe"), make_pg_lab(join=True)
    a, b, c = actors("a"), actors("b"), actors("c")
    read = {name: step(actor, name, lambda lab=lab: lab.store.read("acc-02")) for name, actor, lab in
            (("a", a, one), ("b", b, two), ("c", c, one))}  # fmt: skip
    step(a, "a", lambda: one.store.write("acc-02", read["a"] + 1))
    step(b, "b", lambda: two.store.write("acc-02", read["b"] + 2))
    step(c, "c", lambda: one.store.write("acc-02", read["c"] + 3))
    races = one.races(10)
    second, first = races["races"]
    assert [w["request_id"] for w in first["erased"]] == ["a"] and first["eraser"]["request_id"] == "b"
    assert [w["request_id"] for w in second["erased"]] == ["b"] and second["eraser"]["request_id"] == "c"
    assert first["eraser"]["thread"] == "b_0" and first["erased"][0]["thread"] == "a_0"
    assert first["overwrote"] == {"version": first["eraser"]["version"] - 1, "balance": INITIAL + 1}
    assert races["lost_updates"] == 3 == 6 - (one.bank.balance("acc-02") - INITIAL)
    assert "over v" in first["sentence"] and "written by deposit a on a_0" in first["sentence"]
    assert two.races(1)["races"][0]["id"] == second["id"]  # the same list from either worker


def test_a_reset_forgets_the_races(make_pg_lab, actors):
    lab = make_pg_lab(deposit_guard="unsafe")
    a, b = actors("a"), actors("b")
    ra, rb = step(a, "a", lambda: lab.store.read("acc-00")), step(b, "b", lambda: lab.store.read("acc-00"))
    step(a, "a", lambda: lab.store.write("acc-00", ra + 1))
    step(b, "b", lambda: lab.store.write("acc-00", rb + 1))
    assert lab.races(10)["erasures"] == 1
    lab.reset()
    assert lab.races(10) == {**lab.races(10), "erasures": 0, "lost_updates": 0, "races": []}


def books_agree(lab) -> dict:
    races = lab.races(100)
    deposits = lab.stats()["deposits"]
    assert races["lost_updates"] == deposits["lost_updates"]
    assert races["erasures"] <= 100, "every erasure listed, to add them up per account"
    per_account = Counter()
    for event in races["races"]:
        per_account[event["account"]] += event["cents"]
        if event["complete"]:
            assert (
                sum(w["delta"] for w in event["erased"]) - sum(w["delta"] for w in event["revived"]) == event["cents"]
            )
    lost = {account: row["lost_updates"] for account, row in deposits["per_account"].items() if row["lost_updates"]}
    assert {account: n for account, n in per_account.items() if n} == lost
    return races


@pytest.mark.parametrize(("guard", "policy"), [("unsafe", "unsafe"), ("lock", "release-first"), ("unsafe", "naive")])
def test_two_workers_depositing_and_transferring_add_up(make_pg_lab, guard, policy):
    one = make_pg_lab(deposit_guard=guard, transfer_policy=policy, race_window_ms=2, lock_timeout_ms=2000)
    two = make_pg_lab(join=True)

    def depositor(lab, n):
        for i in range(6):
            try:
                lab.bank.deposit(f"acc-0{i % 3}", 10 + n)
                lab.bank.withdraw(f"acc-0{(i + 1) % 3}", 3)
            except Exception as error:  # queued behind a naive transfer's row, a deposit can be the victim too
                assert type(error).__name__ == "DatabaseDeadlock", error

    def transferrer(lab, n):
        for i in range(6):
            source, target = (f"acc-0{i % 3}", f"acc-0{(i + 1) % 3}") if n % 2 else ("acc-01", "acc-00")
            try:
                lab.transfers.transfer(source, target, 5 + n)
            except Exception as error:  # a deadlock victim rolls back: part of the test
                assert type(error).__name__ == "DatabaseDeadlock", error

    jobs = [partial(depositor, lab, n) for n, lab in enumerate((one, two, one, two))]
    jobs += [partial(transferrer, lab, n) for n, lab in enumerate((one, two, one, two))]
    run_together(jobs)  # a job that raised fails here
    races = books_agree(one)
    assert races["erasures"] > 0


@pytest.mark.parametrize("guard", ["row-lock", "atomic-update"])
def test_the_database_guards_record_no_erasure(make_pg_lab, guard):
    one, two = make_pg_lab(deposit_guard=guard, race_window_ms=2), make_pg_lab(join=True)
    run_together([partial(lab.bank.deposit, "acc-04", 1) for lab in (one, two) * 4])
    assert one.races(10)["erasures"] == 0 and one.stats()["deposits"]["lost_updates"] == 0
