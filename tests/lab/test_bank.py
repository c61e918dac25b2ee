"""The bank under each guard, with real threads and barriers."""

import threading
from functools import partial

import pytest

from bankapp.lab.bank import InsufficientFunds
from bankapp.lab.guards import GuardTimeout, SemaphoreGuard
from bankapp.lab.store import MemoryStore, UnknownAccount

from ..harness import MeetingStore, held_by_another_thread, make_lab, run_together

INITIAL = 100_000

#: Every read waits (briefly) for a second reader: if two threads can be between read and write
#: together, they meet here, so the race is forced. Under a guard that excludes, the second never comes.
ReadersMeet = partial(MeetingStore, on="read", timeout=0.5)


def make_bank(store=MemoryStore, **settings):
    lab = make_lab(store, **settings)
    return lab.bank, lab.settings


def deposit_twice_at_once(bank):
    results = run_together([lambda: bank.deposit("acc-00", 100)] * 2)
    assert not [r for r in results if isinstance(r, Exception)]
    return bank.balance("acc-00") - INITIAL


def test_forced_race_loses_exactly_one_update_without_a_guard():
    bank, _ = make_bank(ReadersMeet, deposit_guard="unsafe", race_window_ms=0)
    assert deposit_twice_at_once(bank) == 100  # two deposits of 100 acknowledged
    assert bank.store.meeting.met == 2
    report = bank.stats.report(bank.balances())
    assert report["acknowledged_amount"] == 200
    assert report["lost_updates"] == 100


@pytest.mark.parametrize(("guard", "permits"), [("lock", 1), ("rlock", 1), ("semaphore", 1)])
def test_forced_race_cannot_happen_under_an_exclusive_guard(guard, permits):
    bank, _ = make_bank(ReadersMeet, deposit_guard=guard, deposit_permits=permits, race_window_ms=0)
    assert deposit_twice_at_once(bank) == 200
    assert bank.store.meeting.met == 0
    assert bank.stats.report(bank.balances())["lost_updates"] == 0


def hammer(bank, threads=16, deposits=10, amount=1):
    """`threads` threads released together by a barrier, each depositing."""

    def client():
        errors = []
        for _ in range(deposits):
            try:
                bank.deposit("acc-00", amount)
            except Exception as error:  # any failure must surface in the test
                errors.append(error)
        return errors

    assert run_together([client] * threads) == [[]] * threads
    return bank.stats.report(bank.balances())


@pytest.mark.parametrize(
    ("guard", "permits", "loses"),
    [("unsafe", 1, True), ("lock", 1, False), ("rlock", 1, False), ("semaphore", 1, False), ("semaphore", 4, True)],
)
def test_sixteen_threads_lose_updates_only_where_the_guard_allows_it(guard, permits, loses):
    bank, _ = make_bank(deposit_guard=guard, deposit_permits=permits, race_window_ms=2)
    report = hammer(bank)
    assert report["acknowledged"] == 160
    assert report["acknowledged_amount"] == 160
    assert report["balance_change"] + report["lost_updates"] == 160
    if loses:
        assert report["lost_updates"] > 0
    else:
        assert report["lost_updates"] == 0
        assert report["balance_change"] == 160


def test_the_guard_acquired_is_the_one_released_when_the_setting_changes():
    bank, holder = make_bank(deposit_guard="lock", race_window_ms=200)
    lock = bank.guards.get("lock", "acc-00")
    thread = threading.Thread(target=bank.deposit, args=("acc-00", 5))
    thread.start()
    while not lock.holders():
        pass
    holder.patch({"deposit_guard": "unsafe"})
    thread.join(5)
    assert lock.holders() == {}
    assert lock.acquire(timeout=0.1), "the lock taken before the switch was never released"
    lock.release()
    assert bank.balance("acc-00") == INITIAL + 5


def test_batch_deposit_succeeds_under_rlock():
    bank, _ = make_bank(deposit_guard="rlock", race_window_ms=0)
    assert bank.batch_deposit("acc-03", [1, 2, 3]) == INITIAL + 6


@pytest.mark.parametrize("guard", ["lock", "semaphore"])
def test_batch_deposit_self_deadlocks_under_a_non_reentrant_guard_and_changes_nothing(guard):
    bank, _ = make_bank(deposit_guard=guard, race_window_ms=0, lock_timeout_ms=50)
    with pytest.raises(GuardTimeout) as caught:
        bank.batch_deposit("acc-03", [1, 2, 3])
    assert caught.value.self_deadlock
    assert bank.balance("acc-03") == INITIAL
    assert bank.stats.report(bank.balances())["acknowledged"] == 0
    assert bank.guards.get(guard, "acc-03").holders() == {}


def test_withdraw_refuses_more_than_the_balance():
    bank, _ = make_bank(deposit_guard="lock", race_window_ms=0)
    with pytest.raises(InsufficientFunds):
        bank.withdraw("acc-00", INITIAL + 1)
    assert bank.withdraw("acc-00", INITIAL) == 0


def withdraw_together(bank, amount, threads=2):
    def client():
        try:
            bank.withdraw("acc-00", amount)
            return "ok"
        except InsufficientFunds:
            return "refused"

    return sorted(run_together([client] * threads))


def test_check_then_act_overdraws_without_a_guard():
    bank, _ = make_bank(deposit_guard="unsafe", race_window_ms=300)  # both must check within it: wide
    assert withdraw_together(bank, 60_000) == ["ok", "ok"]
    assert bank.balance("acc-00") < 0


def test_check_then_act_cannot_overdraw_under_a_lock():
    bank, _ = make_bank(deposit_guard="lock", race_window_ms=50)
    assert withdraw_together(bank, 60_000) == ["ok", "refused"]
    assert bank.balance("acc-00") == 40_000


def test_unknown_account_is_refused_before_any_guard():
    bank, _ = make_bank(deposit_guard="lock")
    with pytest.raises(UnknownAccount):
        bank.deposit("acc-99", 1)


def test_a_deposit_that_times_out_is_counted_as_a_lock_timeout():
    bank, _ = make_bank(deposit_guard="lock", race_window_ms=0, lock_timeout_ms=30)
    with held_by_another_thread(bank.guards.get("lock", "acc-00")), pytest.raises(GuardTimeout):
        bank.deposit("acc-00", 5)
    report = bank.stats.report(bank.balances())
    assert report["lock_timeouts"] == 1
    assert report["acknowledged"] == 0
    assert bank.balance("acc-00") == INITIAL


class ThiefOnThirdAcquire(SemaphoreGuard):
    """A semaphore of 2 whose third acquire (the batch's second amount) finds a
    thief holding the permit the first amount just gave back."""

    def __init__(self, label, permits):
        super().__init__(label, permits)
        self.calls = 0
        self.thief_in, self.thief_may_go = threading.Event(), threading.Event()

    def acquire(self, timeout=None):
        self.calls += 1
        if self.calls == 3:
            threading.Thread(target=self._steal, daemon=True).start()
            self.thief_in.wait(5)
        return super().acquire(timeout)

    def _steal(self):
        assert super().acquire(5)
        self.thief_in.set()
        self.thief_may_go.wait(5)
        super().release()


def test_a_batch_refused_half_way_takes_back_what_it_applied():
    """A semaphore of 2: the batch holds one permit and its amounts take the other in turn;
    a thief takes it after the first amount, so the second cannot get in (found in review)."""
    bank, _ = make_bank(deposit_guard="semaphore", deposit_permits=2, race_window_ms=0, lock_timeout_ms=50)
    thief = ThiefOnThirdAcquire("acc-02", 2)
    bank.guards._guards[("semaphore", 2, "acc-02")] = thief
    with pytest.raises(GuardTimeout):
        bank.batch_deposit("acc-02", [10, 20, 30])
    thief.thief_may_go.set()
    assert thief.calls == 3  # outer, first amount (applied), second amount (refused)
    assert bank.balance("acc-02") == INITIAL
    report = bank.stats.report(bank.balances())
    assert report["acknowledged"] == 0 and report["acknowledged_amount"] == 0 and report["lost_updates"] == 0
