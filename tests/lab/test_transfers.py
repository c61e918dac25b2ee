"""Transfers under each policy, and the audit, with real threads and barriers."""

import threading
from functools import partial

import pytest

from bankapp.lab.bank import InsufficientFunds
from bankapp.lab.guards import GuardTimeout
from bankapp.lab.locks import DeadlockVictim
from bankapp.lab.store import MemoryStore, UnknownAccount
from bankapp.lab.transfers import POLICIES, SameAccount

from ..harness import Meeting, MeetingStore, held_by_another_thread, make_lab, run_together

INITIAL = 100_000
TOTAL = 16 * INITIAL

#: The first write of each transfer (its debit) waits for the other transfer's debit: under
#: `naive` both threads then hold their `from` lock before either asks for `to`, a deadlock forced.
DebitsMeet = partial(MeetingStore, on="write", once=True)


def make_desk(store=MemoryStore, **settings):
    lab = make_lab(store, **settings)
    return lab.transfers, lab.settings


def opposing(desk, pairs=4, rounds=10, amount=7):
    """`pairs` threads send acc-00 -> acc-01 and as many send it back, `rounds` times each."""

    def sender(source, target):
        def job():
            outcomes = []
            for _ in range(rounds):
                try:
                    outcomes.append(desk.transfer(source, target, amount))
                except (DeadlockVictim, GuardTimeout) as error:
                    outcomes.append(error)
            return outcomes

        return job

    jobs = [sender("acc-00", "acc-01") for _ in range(pairs)] + [sender("acc-01", "acc-00") for _ in range(pairs)]
    return [outcome for outcomes in run_together(jobs) for outcome in outcomes]


def total(desk):
    return sum(desk.store.snapshot().values())


@pytest.mark.parametrize("policy", list(POLICIES))
def test_one_transfer_moves_the_money_under_every_policy(policy):
    desk, _ = make_desk(transfer_policy=policy)
    receipt = desk.transfer("acc-03", "acc-04", 250)
    assert receipt == {
        "from": {"id": "acc-03", "balance": INITIAL - 250},
        "to": {"id": "acc-04", "balance": INITIAL + 250},
        "amount": 250,
        "policy": policy,
        "retries": 0,
    }
    assert desk.counters.report()["committed"] == 1
    assert desk.ledger.report(desk.store.snapshot())["lost_updates"] == 0
    assert desk.audit()["consistent"]


@pytest.mark.parametrize("policy", list(POLICIES))
def test_refusals_change_nothing(policy):
    desk, _ = make_desk(transfer_policy=policy)
    with pytest.raises(InsufficientFunds):
        desk.transfer("acc-00", "acc-01", INITIAL + 1)
    with pytest.raises(SameAccount):
        desk.transfer("acc-00", "acc-00", 1)
    with pytest.raises(UnknownAccount):
        desk.transfer("acc-00", "acc-99", 1)
    assert desk.store.snapshot() == {account: INITIAL for account in desk.store.account_ids()}
    assert desk.counters.report()["insufficient_funds"] == 1
    assert desk.locks.snapshot()["locks"] == []


def test_naive_opposing_transfers_deadlock_and_the_victim_rolls_back():
    desk, _ = make_desk(DebitsMeet, transfer_policy="naive", lock_timeout_ms=5000)
    results = run_together(
        [lambda: desk.transfer("acc-00", "acc-01", 100), lambda: desk.transfer("acc-01", "acc-00", 30)],
        expect=(DeadlockVictim,),
    )
    victims = [r for r in results if isinstance(r, DeadlockVictim)]
    done = [r for r in results if isinstance(r, dict)]
    assert len(victims) == 1 and len(done) == 1
    deadlock = victims[0].deadlock
    assert deadlock["accounts"] == ["acc-00", "acc-01"]
    assert sorted(step["thread"] for step in deadlock["cycle"]) == ["client-0", "client-1"]
    assert {step["waits_for"] for step in deadlock["cycle"]} == {"acc-00", "acc-01"}
    # the victim's debit was undone; only the winner's transfer shows
    moved = done[0]["amount"] if done[0]["from"]["id"] == "acc-00" else -done[0]["amount"]
    assert desk.store.read("acc-00") == INITIAL - moved
    assert desk.store.read("acc-01") == INITIAL + moved
    report = desk.stats()
    assert report["deadlocks"] == 1 and report["deadlock_victims"] == 1 and report["committed"] == 1
    assert report["total_conserved"]
    assert desk.ledger.report(desk.store.snapshot())["lost_updates"] == 0
    assert desk.locks.snapshot()["locks"] == []


def test_naive_under_load_deadlocks_again_and_again_yet_conserves_the_total():
    desk, _ = make_desk(transfer_policy="naive", race_window_ms=2, lock_timeout_ms=5000)
    outcomes = opposing(desk)
    victims = [o for o in outcomes if isinstance(o, DeadlockVictim)]
    assert victims, "opposing naive transfers never deadlocked"
    assert all(o["policy"] == "naive" for o in outcomes if isinstance(o, dict))
    assert total(desk) == TOTAL
    stats = desk.stats()
    assert stats["deadlock_victims"] == len(victims) and stats["deadlocks"] >= len(victims)
    assert stats["committed"] + len(victims) + stats["lock_timeouts"] == len(outcomes)
    assert desk.ledger.report(desk.store.snapshot())["lost_updates"] == 0


def audit_while(desk, work, every=0.005):
    """Run `work` and, meanwhile, audit every `every` seconds (0: back to back); return the audits."""
    audits, done = [], threading.Event()

    def auditor():
        while not done.wait(every):
            audits.append(desk.audit())

    thread = threading.Thread(target=auditor, name="auditor")
    thread.start()
    try:
        work()
    finally:
        done.set()
        thread.join(30)
    return audits


@pytest.mark.parametrize("policy", ["ordered", "backoff"])
def test_ordered_and_backoff_complete_every_transfer_without_a_deadlock(policy):
    desk, _ = make_desk(transfer_policy=policy, race_window_ms=1, lock_timeout_ms=10_000)
    audits = []
    outcomes = []
    audits = audit_while(desk, lambda: outcomes.extend(opposing(desk)))
    assert all(isinstance(o, dict) for o in outcomes), [o for o in outcomes if not isinstance(o, dict)][:3]
    assert len(outcomes) == 80
    stats = desk.stats()
    assert stats["committed"] == 80 and stats["deadlocks"] == 0
    assert total(desk) == TOTAL
    assert audits and all(a["consistent"] for a in audits), "an audit saw a wrong total"
    assert stats["wrong_total_reads"] == 0


@pytest.mark.parametrize("policy", ["ordered", "backoff"])
def test_audits_back_to_back_starve_no_transfer(policy):
    """16 threads make 20 opposing transfers each while audits run back to back.

    The audit waits patiently, holding `acc-00`, for `acc-01`. With locks
    that let a newcomer overtake a waiter, and `backoff` retrying in the
    same order, about a third of the `backoff` transfers waited out
    `lock_timeout_ms` here (the starvation bug).
    """
    desk, _ = make_desk(transfer_policy=policy, race_window_ms=1, lock_timeout_ms=5000)
    outcomes = []
    audits = audit_while(desk, lambda: outcomes.extend(opposing(desk, pairs=8, rounds=20, amount=1)), every=0)
    assert [o for o in outcomes if not isinstance(o, dict)] == []
    assert len(outcomes) == 320 and desk.stats()["committed"] == 320
    assert desk.stats()["lock_timeouts"] == 0 and desk.stats()["deadlocks"] == 0
    assert audits and all(a["consistent"] for a in audits)
    assert total(desk) == TOTAL


def test_backoff_retries_when_the_second_lock_is_busy():
    desk, _ = make_desk(DebitsMeet, transfer_policy="backoff", race_window_ms=5, lock_timeout_ms=10_000)
    results = run_together(
        [lambda: desk.transfer("acc-00", "acc-01", 100), lambda: desk.transfer("acc-01", "acc-00", 30)]
    )
    assert all(isinstance(r, dict) for r in results)
    assert sum(r["retries"] for r in results) >= 1
    assert desk.stats()["retries"] == sum(r["retries"] for r in results)
    assert desk.store.read("acc-00") == INITIAL - 70
    assert desk.stats()["deadlocks"] == 0


def test_release_first_conserves_the_total_at_rest_but_an_audit_sees_money_in_flight():
    desk, _ = make_desk(transfer_policy="release-first", race_window_ms=5, lock_timeout_ms=10_000)
    outcomes = []
    audits = audit_while(desk, lambda: outcomes.extend(opposing(desk, pairs=2)))
    assert len(outcomes) == 40 and all(isinstance(o, dict) for o in outcomes)
    assert desk.stats()["deadlocks"] == 0
    assert total(desk) == TOTAL
    wrong = [a for a in audits if not a["consistent"]]
    assert wrong, "no audit caught money in flight"
    assert all(a["difference"] < 0 for a in wrong)  # missing, never created
    assert desk.stats()["wrong_total_reads"] == len(wrong)
    assert desk.audit()["consistent"]


def test_release_first_puts_the_debit_back_when_the_credit_times_out():
    desk, _ = make_desk(transfer_policy="release-first", lock_timeout_ms=50)
    with held_by_another_thread(desk.locks["acc-01"]), pytest.raises(GuardTimeout):
        desk.transfer("acc-00", "acc-01", 100)
    assert desk.store.read("acc-00") == INITIAL
    assert desk.stats()["lock_timeouts"] == 1 and desk.stats()["committed"] == 0


def test_unsafe_creates_or_destroys_money():
    """Two transfers into acc-01 at once: both read its old balance, the second write erases the first credit."""
    credits_meet = partial(MeetingStore, on="read", accounts={"acc-01"}, timeout=2)
    desk, _ = make_desk(credits_meet, transfer_policy="unsafe", race_window_ms=1)
    results = run_together(
        [lambda: desk.transfer("acc-00", "acc-01", 100), lambda: desk.transfer("acc-02", "acc-01", 100)]
    )
    assert all(isinstance(r, dict) for r in results)
    assert total(desk) == TOTAL - 100
    desk.store.meeting = Meeting(parties=1)  # the audit reads acc-01 alone
    audit = desk.audit()
    assert not audit["consistent"] and audit["difference"] == -100
    assert desk.stats()["total_conserved"] is False


def test_an_audit_waits_for_a_transfer_holding_a_lock():
    desk, _ = make_desk(transfer_policy="ordered", lock_timeout_ms=50)
    with held_by_another_thread(desk.locks["acc-07"]), pytest.raises(GuardTimeout):
        desk.audit()
    assert desk.locks.snapshot()["locks"] == []


def test_deposits_move_the_expected_total():
    lab = make_lab()
    lab.bank.deposit("acc-05", 500)
    lab.bank.withdraw("acc-06", 200)
    audit = lab.transfers.audit()
    assert audit["expected_total"] == TOTAL + 300 == audit["total"]
    assert audit["consistent"]


def test_reset_zeroes_counters_and_forgets_deadlocks():
    desk, _ = make_desk(DebitsMeet, transfer_policy="naive")
    results = run_together(
        [lambda: desk.transfer("acc-00", "acc-01", 1), lambda: desk.transfer("acc-01", "acc-00", 1)],
        expect=(DeadlockVictim,),
    )
    assert sum(isinstance(result, DeadlockVictim) for result in results) == 1
    assert desk.stats()["deadlocks"] == 1
    desk.reset()
    stats = desk.stats()
    assert stats["deadlocks"] == stats["committed"] == stats["deadlock_victims"] == 0
    assert desk.locks.snapshot()["recent_deadlocks"] == []


def test_every_policy_has_a_docstring_naming_its_condition():
    conditions = {"circular wait", "hold and wait", "no preemption", "all four", "no lock"}
    for policy in POLICIES.values():
        doc = type(policy).__doc__.lower()
        assert any(condition in doc for condition in conditions), policy.name
