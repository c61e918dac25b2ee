"""The lab's gate with real threads: a cap on requests that may wait on locks,
a reset that is atomic with respect to requests, and the operator's way out of
deadlocks that `lock_timeout_ms` none makes permanent."""

import pytest

from bankapp.lab.admission import AdmissionRejected, ResetBlocked, ResetInProgress, ServerBusy
from bankapp.lab.locks import DeadlockVictim

from ..harness import Background, held_by_another_thread, make_lab, wait_until

INITIAL = 100_000


def operations(lab):
    return lab.stats()["operations"]


def assert_books_whole(lab):
    """Every invariant of the bank at rest: the audit is consistent, nothing in flight, nothing lost."""
    audit = lab.transfers.audit()
    stats = lab.stats()
    assert audit["consistent"], audit
    assert stats["transfers"]["in_flight"] == 0
    assert stats["operations"]["in_flight"] == 0
    assert stats["deposits"]["lost_updates"] == 0
    assert stats["deposits"]["accounts_with_lost_updates"] == 0
    counts = [stats["transfers"][name] for name in ("committed", "deadlock_victims", "audits", "peak_in_flight")]
    assert min(counts) >= 0


# The cap


def test_over_the_cap_a_request_is_refused_at_once_and_changes_nothing():
    """threads 4 keeps 2 in reserve: two deposits waiting on a held lock fill the budget."""
    lab = make_lab(threads=4, deposit_guard="lock", checkout_guard="unsafe", lock_timeout_ms=30_000)
    jobs = Background()
    with held_by_another_thread(lab.locks["acc-00"]):
        for name in ("first", "second"):
            jobs.start(name, lambda: lab.bank.deposit("acc-00", 5))
        wait_until(lambda: operations(lab)["in_flight"] == 2)
        for refused in (
            lambda: lab.bank.deposit("acc-01", 7),
            lambda: lab.bank.withdraw("acc-01", 7),
            lambda: lab.transfers.transfer("acc-02", "acc-03", 7),
            lambda: lab.transfers.audit(),
        ):
            with pytest.raises(ServerBusy, match="at most 2 requests") as caught:
                refused()
            assert (caught.value.limit, caught.value.inside) == (2, 2)
        with pytest.raises(AdmissionRejected) as checkout:
            lab.shop.checkout("widget", 1)
        assert checkout.value.reason == "server-busy"
    assert jobs.join() == {"first": INITIAL + 5, "second": INITIAL + 10}
    balances = lab.bank.balances()
    assert balances["acc-00"] == INITIAL + 10
    assert all(balance == INITIAL for account, balance in balances.items() if account != "acc-00")
    report = operations(lab)
    assert report["refused"] == {"server-busy": 5} and report["in_flight"] == 0
    assert lab.shop.report()["rejections"] == {"server-busy": 1}
    assert lab.shop.inventory.snapshot()["widget"] == 1_000_000


# Reset under load


def test_reset_waits_for_a_transfer_in_flight_and_the_books_are_whole_afterwards():
    """The issue's case 3: reset during an `ordered` transfer used to leave the audit off by its amount."""
    lab = make_lab(transfer_policy="ordered", race_window_ms=300)
    jobs = Background()
    jobs.start("transfer", lambda: lab.transfers.transfer("acc-00", "acc-01", 500))
    wait_until(lambda: lab.stats()["transfers"]["in_flight"] == 1)
    outcome = lab.reset()
    assert not jobs.threads["transfer"].is_alive(), "reset returned before the transfer in flight finished"
    assert jobs.join()["transfer"]["amount"] == 500
    assert outcome == {"deadlocks_broken": []}
    assert lab.bank.balances() == dict.fromkeys(lab.store.account_ids(), INITIAL)
    assert_books_whole(lab)
    assert lab.stats()["transfers"]["committed"] == 0


def test_fifteen_transfers_and_deposits_with_a_reset_among_them_leave_every_invariant():
    """The issue saw `in_flight` -15 and lost updates -3: a reset that zeroed counters under running requests."""
    lab = make_lab(transfer_policy="ordered", deposit_guard="lock", race_window_ms=150)
    jobs = Background()
    for i in range(8):  # two each way on four pairs: each pair's second waits for its first
        source, target = f"acc-0{2 * (i % 4)}", f"acc-0{2 * (i % 4) + 1}"
        if i >= 4:
            source, target = target, source
        jobs.start(f"transfer-{i}", lambda s=source, t=target, n=100 + i: lab.transfers.transfer(s, t, n))
    for i in range(7):
        jobs.start(f"deposit-{i}", lambda account=f"acc-{8 + i:02d}": lab.bank.deposit(account, 3))
    wait_until(lambda: operations(lab)["in_flight"] >= 8)
    lab.reset()
    jobs.join()  # a job that raised fails here
    assert_books_whole(lab)
    stats = lab.stats()
    assert stats["transfers"]["committed"] + stats["deposits"]["acknowledged"] < 15  # some landed before the reset
    assert lab.store.snapshot() == dict.fromkeys(lab.store.account_ids(), INITIAL) | {
        account: row["balance"] for account, row in stats["deposits"]["per_account"].items()
    }


def reset_waiting_for_a_transfer(jobs):
    """A lab whose reset (job `reset`) waits for a 400 ms transfer (job `transfer`) in flight."""
    lab = make_lab(transfer_policy="ordered", race_window_ms=400)
    jobs.start("transfer", lambda: lab.transfers.transfer("acc-00", "acc-01", 500))
    wait_until(lambda: lab.stats()["transfers"]["in_flight"] == 1)
    jobs.start("reset", lab.reset)
    wait_until(lambda: lab.gate._resetting)
    return lab


def test_a_request_that_comes_during_a_reset_waits_for_it_then_runs_on_the_fresh_books():
    jobs = Background()
    lab = reset_waiting_for_a_transfer(jobs)
    jobs.start("deposit", lambda: lab.bank.deposit("acc-05", 9))
    wait_until(lambda: operations(lab)["waiting_for_reset"] == 1)
    results = jobs.join()
    assert results["deposit"] == INITIAL + 9  # after the reset, so it counts
    assert lab.stats()["deposits"]["acknowledged_amount"] == 9
    assert lab.bank.balances()["acc-00"] == INITIAL
    assert_books_whole(lab)


def test_a_reset_breaks_a_permanent_deadlock_first_then_resets():
    lab = make_lab(transfer_policy="naive", lock_timeout_ms="none", race_window_ms=100)
    jobs = Background()
    jobs.start("there", lambda: lab.transfers.transfer("acc-00", "acc-01", 5))
    jobs.start("back", lambda: lab.transfers.transfer("acc-01", "acc-00", 5))
    wait_until(lambda: lab.locks.snapshot()["live_deadlocks"])
    outcome = lab.reset()
    results = jobs.join(expect=(DeadlockVictim,))
    assert len(outcome["deadlocks_broken"]) == 1 and outcome["deadlocks_broken"][0]["broken_by"] == "operator"
    victims = [r for r in results.values() if isinstance(r, DeadlockVictim)]
    assert len(victims) == 1 and len([r for r in results.values() if isinstance(r, dict)]) == 1
    assert lab.bank.balances() == dict.fromkeys(lab.store.account_ids(), INITIAL)
    assert lab.locks.snapshot()["locks"] == []
    assert_books_whole(lab)


def test_a_reset_that_cannot_drain_gives_up_names_what_blocks_it_and_changes_nothing():
    lab = make_lab(checkout_guard="lock", service_time_ms=3000)
    lab.gate.reset_wait = 0.3
    lab.bank.deposit("acc-00", 5)
    jobs = Background()
    jobs.start("slow-checkout", lambda: lab.shop.checkout("widget", 1))
    wait_until(lambda: lab.shop.report()["gateway_in_use"] == 1)
    with pytest.raises(ResetBlocked) as caught:
        lab.reset()
    [blocking] = caught.value.blocking
    assert blocking["operation"] == "checkout" and blocking["thread"] == "slow-checkout"
    assert blocking["holds"] == ["lock guard of checkout"] and blocking["waits_for"] == []
    assert "checkout on thread slow-checkout" in str(caught.value) and "changed nothing" in str(caught.value)
    assert lab.bank.balance("acc-00") == INITIAL + 5  # not reset
    assert lab.stats()["deposits"]["acknowledged_amount"] == 5
    assert lab.bank.deposit("acc-01", 1) == INITIAL + 1  # the gate is open again
    assert isinstance(jobs.join()["slow-checkout"].order_id, str)


def test_a_second_reset_while_one_runs_waits_its_turn_then_resets():
    jobs = Background()
    lab = reset_waiting_for_a_transfer(jobs)
    jobs.start("second", lab.reset)
    results = jobs.join()
    assert results["reset"] == {"deadlocks_broken": []} and results["second"] == {"deadlocks_broken": []}
    assert lab.bank.balances()["acc-00"] == INITIAL
    assert_books_whole(lab)


def test_a_second_reset_that_cannot_start_in_time_changes_nothing():
    jobs = Background()
    lab = reset_waiting_for_a_transfer(jobs)
    lab.gate.reset_wait = 0.05  # the first waits for a 400 ms transfer: the second cannot start in time
    with pytest.raises(ResetInProgress, match="another reset was still running"):
        lab.reset()
    assert jobs.join()["reset"] == {"deadlocks_broken": []}


# Breaking a self-deadlock


def test_a_batch_that_waits_for_itself_forever_is_broken_and_the_deposit_behind_it_goes_on():
    """The issue: one batch deposit under `lock` with lock_timeout_ms none tied up acc-00 until restart."""
    lab = make_lab(deposit_guard="lock", lock_timeout_ms="none")
    jobs = Background()
    jobs.start("batch", lambda: lab.bank.batch_deposit("acc-00", [1, 2, 3]))
    guard = lab.bank.guard_for("acc-00", lab.config())
    wait_until(lambda: len(guard.waiting()) == 1)
    jobs.start("deposit", lambda: lab.bank.deposit("acc-00", 40))
    wait_until(lambda: len(guard.waiting()) == 2)
    [broken] = lab.break_deadlocks()
    results = jobs.join(expect=(DeadlockVictim,))
    assert isinstance(results["batch"], DeadlockVictim) and results["batch"].deadlock is broken
    assert results["deposit"] == INITIAL + 40
    assert broken["victim"] == "batch" and broken["accounts"] == ["acc-00"]
    assert broken["cycle"] == [
        {
            "thread": "batch",
            "ident": jobs.threads["batch"].ident,
            "holds": ["lock guard of acc-00"],
            "waits_for": "lock guard of acc-00",
        }
    ]
    assert lab.locks.snapshot()["recent_deadlocks"] == [broken]
    assert lab.stats()["deposits"]["rejected"] == {"deadlock_victim": 1}
    assert guard.holders() == {} and lab.bank.balance("acc-00") == INITIAL + 40
    assert_books_whole(lab)
