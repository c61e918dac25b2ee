"""The bank under each guard, with real threads and barriers."""

import threading

import pytest

from bankapp.lab.bank import Bank, InsufficientFunds
from bankapp.lab.guards import GuardSet, GuardTimeout, SemaphoreGuard, hold
from bankapp.lab.ledger import LedgerStats
from bankapp.lab.locks import LockTable
from bankapp.lab.store import MemoryStore, UnknownAccount
from bankapp.settings import ConfigHolder, load

INITIAL = 100_000


def make_bank(store_class=MemoryStore, **settings):
    config = load(settings, environ={})
    holder = ConfigHolder(config)
    store = store_class(config.account_ids, config.initial_balance)
    stats = LedgerStats(config.account_ids, config.initial_balance)
    return Bank(store, lambda: holder.current, stats, GuardSet(), LockTable(config.account_ids)), holder


class RendezvousStore(MemoryStore):
    """Every read waits (briefly) for a second reader: if two threads can be
    between read and write together, they meet here, so the race is forced
    rather than hoped for. Under a guard that excludes, the second never comes
    and the wait just times out."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.meeting = threading.Barrier(2, timeout=0.5)
        self.met = 0

    def read(self, account_id):
        balance = super().read(account_id)
        try:
            self.meeting.wait()
            self.met += 1
        except threading.BrokenBarrierError:
            self.meeting.reset()
        return balance


def deposit_twice_at_once(bank):
    start = threading.Barrier(2, timeout=5)

    def deposit():
        start.wait()
        bank.deposit("acc-00", 100)

    threads = [threading.Thread(target=deposit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return bank.balance("acc-00") - INITIAL


def test_forced_race_loses_exactly_one_update_without_a_guard():
    bank, _ = make_bank(RendezvousStore, deposit_guard="unsafe", race_window_ms=0)
    assert deposit_twice_at_once(bank) == 100  # two deposits of 100 acknowledged
    assert bank.store.met == 2
    report = bank.stats.report(bank.balances())
    assert report["acknowledged_amount"] == 200
    assert report["lost_updates"] == 100


@pytest.mark.parametrize(("guard", "permits"), [("lock", 1), ("rlock", 1), ("semaphore", 1)])
def test_forced_race_cannot_happen_under_an_exclusive_guard(guard, permits):
    bank, _ = make_bank(RendezvousStore, deposit_guard=guard, deposit_permits=permits, race_window_ms=0)
    assert deposit_twice_at_once(bank) == 200
    assert bank.store.met == 0
    assert bank.stats.report(bank.balances())["lost_updates"] == 0


def hammer(bank, threads=16, deposits=10, amount=1):
    """`threads` threads released together by a barrier, each depositing."""
    start = threading.Barrier(threads, timeout=10)
    errors = []

    def client():
        start.wait()
        for _ in range(deposits):
            try:
                bank.deposit("acc-00", amount)
            except Exception as error:  # any failure must surface in the test
                errors.append(error)

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    assert not errors
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
    start = threading.Barrier(threads, timeout=5)
    outcomes = []

    def client():
        start.wait()
        try:
            bank.withdraw("acc-00", amount)
            outcomes.append("ok")
        except InsufficientFunds:
            outcomes.append("refused")

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(10)
    return sorted(outcomes)


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
    lock = bank.guards.get("lock", "acc-00")
    taken, done = threading.Event(), threading.Event()

    def holder():
        with hold(lock, 1):
            taken.set()
            done.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait(5)
    with pytest.raises(GuardTimeout):
        bank.deposit("acc-00", 5)
    done.set()
    thread.join(5)
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
