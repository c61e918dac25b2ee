"""Deposits, transfers and the audit on the same account, with real threads.

Deposits take the account's deposit guard; transfers and the audit take the
account's `AccountLock`. Under an excluding guard a deposit takes that account
lock too, so the two kinds of writer cannot both be inside a read-modify-write
of one balance. The interleaving is forced by the store, not hoped for.
"""

import threading
from functools import partial

import pytest

from bankapp.lab.guards import GuardTimeout
from bankapp.lab.locks import DeadlockVictim
from bankapp.lab.store import MemoryStore

from ..harness import MeetingStore, held_by_another_thread, make_lab

INITIAL = 100_000
TOTAL = 16 * INITIAL
#: How long the bank's write waits for a transfer to get in first; under a shared lock it never can.
OVERLAP_WAIT = 0.3

SAFE_GUARDS = [("lock", 1), ("rlock", 1), ("semaphore", 1)]
LOSSY_GUARDS = [("unsafe", 1), ("semaphore", 4)]
SAFE_POLICIES = ["naive", "ordered", "backoff", "release-first"]


def bank_and_desk(store=MemoryStore, **settings):
    """A bank and a transfer desk over one store, one ledger and one lock table, as `Lab` builds them."""
    lab = make_lab(store, **settings)
    return lab.bank, lab.transfers


class OverlapStore(MemoryStore):
    """The bank's write of `acc-00` first waits (briefly) for a transfer to write `acc-00`.

    Threads are told apart by name: "bank" and "transfer". If a transfer can
    get in between the bank's read and its write, it does, and the bank's
    write then erases what the transfer wrote: the lost update is forced.
    Under one shared lock it cannot get in, the wait times out, and the
    writes of `acc-00` come in the order bank, transfer.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bank_read = threading.Event()
        self.transfer_wrote = threading.Event()
        self.writers: list[str] = []  # who wrote acc-00, in order

    def read(self, account_id):
        balance = super().read(account_id)
        if account_id == "acc-00" and threading.current_thread().name == "bank":
            self.bank_read.set()
        return balance

    def write(self, account_id, balance):
        role = threading.current_thread().name
        if account_id == "acc-00" and role == "bank":
            self.transfer_wrote.wait(OVERLAP_WAIT)
        super().write(account_id, balance)
        if account_id == "acc-00":
            self.writers.append(role)
            if role == "transfer":
                self.transfer_wrote.set()


def overlap(bank, desk, bank_job, source, target, amount=50):
    """Run `bank_job` in thread "bank"; once it has read acc-00, a transfer in thread "transfer"."""
    errors = []

    def run(job):
        try:
            job()
        except Exception as error:  # any failure must surface in the test
            errors.append(error)

    banker = threading.Thread(target=run, args=(bank_job,), name="bank")
    banker.start()
    assert bank.store.bank_read.wait(5), "the bank never read acc-00"
    mover = threading.Thread(target=run, args=(lambda: desk.transfer(source, target, amount),), name="transfer")
    mover.start()
    for thread in (banker, mover):
        thread.join(10)
        assert not thread.is_alive()
    assert not errors, errors
    return bank.store.writers


@pytest.mark.parametrize("policy", SAFE_POLICIES)
@pytest.mark.parametrize(("guard", "permits"), SAFE_GUARDS)
@pytest.mark.parametrize(("source", "target"), [("acc-00", "acc-01"), ("acc-01", "acc-00")], ids=["debit", "credit"])
def test_a_deposit_and_a_transfer_on_one_account_lose_nothing_under_safe_modes(guard, permits, policy, source, target):
    bank, desk = bank_and_desk(OverlapStore, deposit_guard=guard, deposit_permits=permits, transfer_policy=policy)
    writers = overlap(bank, desk, lambda: bank.deposit("acc-00", 100), source, target)
    assert writers == ["bank", "transfer"]  # the transfer waited for the deposit's account lock
    moved = -50 if source == "acc-00" else 50
    assert bank.balance("acc-00") == INITIAL + 100 + moved
    assert bank.stats.report(bank.balances())["lost_updates"] == 0
    audit = desk.audit()
    assert audit["consistent"] and audit["total"] == TOTAL + 100
    assert desk.locks.snapshot()["locks"] == []


@pytest.mark.parametrize(("guard", "permits"), LOSSY_GUARDS)
@pytest.mark.parametrize(("source", "target"), [("acc-00", "acc-01"), ("acc-01", "acc-00")], ids=["debit", "credit"])
def test_a_guard_that_does_not_exclude_lets_the_transfer_in_and_loses_it(guard, permits, source, target):
    """The same interleaving is possible, and happens, where the guard lets several threads in."""
    bank, desk = bank_and_desk(OverlapStore, deposit_guard=guard, deposit_permits=permits, transfer_policy="ordered")
    writers = overlap(bank, desk, lambda: bank.deposit("acc-00", 100), source, target)
    assert writers == ["transfer", "bank"]
    assert bank.balance("acc-00") == INITIAL + 100  # the deposit's write erased the transfer's leg
    moved = -50 if source == "acc-00" else 50
    assert bank.stats.report(bank.balances())["lost_updates"] == moved
    audit = desk.audit()
    assert not audit["consistent"] and audit["difference"] == -moved


@pytest.mark.parametrize("policy", ["naive", "ordered"])
def test_a_withdrawal_and_a_transfer_on_one_account_lose_nothing_under_a_lock(policy):
    bank, desk = bank_and_desk(OverlapStore, deposit_guard="lock", transfer_policy=policy)
    writers = overlap(bank, desk, lambda: bank.withdraw("acc-00", 100), "acc-01", "acc-00")
    assert writers == ["bank", "transfer"]
    assert bank.balance("acc-00") == INITIAL - 100 + 50
    audit = desk.audit()
    assert audit["consistent"] and audit["total"] == TOTAL - 100


class PausingStore(MemoryStore):
    """A deposit, once written, pauses (before it is counted) until the test lets it go."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.written = threading.Event()
        self.go_on = threading.Event()

    def write(self, account_id, balance):
        super().write(account_id, balance)
        self.written.set()
        self.go_on.wait(OVERLAP_WAIT)


@pytest.mark.parametrize(("guard", "permits", "consistent"), [("lock", 1, True), ("unsafe", 1, False)])
def test_the_audit_sees_a_deposit_wholly_or_not_at_all_only_under_an_excluding_guard(guard, permits, consistent):
    bank, desk = bank_and_desk(PausingStore, deposit_guard=guard, deposit_permits=permits)
    depositor = threading.Thread(target=bank.deposit, args=("acc-00", 100))
    depositor.start()
    assert bank.store.written.wait(5)
    audit = desk.audit()  # under `lock` it waits for the deposit to be counted and to let go
    bank.store.go_on.set()
    depositor.join(5)
    assert audit["consistent"] is consistent, audit
    assert desk.audit()["consistent"]  # at rest every mode agrees


def test_a_deposit_waits_for_the_account_lock_at_most_lock_timeout_and_changes_nothing():
    bank, desk = bank_and_desk(deposit_guard="lock", lock_timeout_ms=50)
    with held_by_another_thread(desk.locks["acc-00"]), pytest.raises(GuardTimeout) as caught:  # a transfer, say
        bank.deposit("acc-00", 100)
    assert not caught.value.self_deadlock
    assert "account lock of acc-00" in str(caught.value)
    assert bank.balance("acc-00") == INITIAL
    assert bank.stats.report(bank.balances())["acknowledged"] == 0
    assert bank.guards.get("lock", "acc-00").holders() == {}  # the deposit guard was given back too


@pytest.mark.parametrize(("guard", "permits"), LOSSY_GUARDS)
def test_a_guard_that_does_not_exclude_never_waits_for_the_account_lock(guard, permits):
    bank, desk = bank_and_desk(deposit_guard=guard, deposit_permits=permits, lock_timeout_ms=50)
    with held_by_another_thread(desk.locks["acc-00"]):
        assert bank.deposit("acc-00", 100) == INITIAL + 100


def test_a_batch_under_lock_self_deadlocks_on_its_guard_before_any_account_lock():
    bank, desk = bank_and_desk(deposit_guard="lock", lock_timeout_ms=300)
    outcome = []

    def batch_deposit():
        try:
            bank.batch_deposit("acc-03", [1, 2])
        except GuardTimeout as error:
            outcome.append(error)

    batch = threading.Thread(target=batch_deposit)
    batch.start()
    guard = bank.guards.get("lock", "acc-03")
    while not guard.holders():
        pass
    assert desk.locks.snapshot()["locks"] == []  # waiting for itself, holding no account lock
    batch.join(5)
    assert len(outcome) == 1 and outcome[0].self_deadlock
    assert bank.balance("acc-03") == INITIAL


#: Each transfer thread's first write (its debit) waits for the other's, and for the test: a `naive` deadlock, forced.
DebitsMeet = partial(MeetingStore, on="write", once=True, threads="transfer", parties=3, timeout=2)


def test_a_deposit_queued_behind_a_deadlock_is_never_its_victim():
    """Only the transfers are in the cycle; the deposit holds no account lock while it waits, so it just waits."""
    bank, desk = bank_and_desk(DebitsMeet, deposit_guard="lock", transfer_policy="naive", race_window_ms=100)
    results = {}

    def run(name, job):
        try:
            results[name] = job()
        except Exception as error:
            results[name] = error

    transfers = [
        threading.Thread(target=run, args=(name, lambda a=a, b=b: desk.transfer(a, b, 10)), name=name)
        for name, a, b in [("transfer-1", "acc-00", "acc-01"), ("transfer-2", "acc-01", "acc-00")]
    ]
    for thread in transfers:
        thread.start()
    assert desk.store.meeting(), "the transfers never both wrote their debits"  # both `from` locks are held
    depositor = threading.Thread(target=run, args=("deposit", lambda: bank.deposit("acc-00", 100)), name="deposit")
    depositor.start()
    for thread in [*transfers, depositor]:
        thread.join(10)
        assert not thread.is_alive()
    assert isinstance(results["deposit"], int), results
    victims = [name for name, result in results.items() if isinstance(result, DeadlockVictim)]
    assert len(victims) == 1 and victims[0].startswith("transfer"), results
    assert sum(isinstance(result, dict) for result in results.values()) == 1  # the other transfer committed
    deadlocks = desk.locks.snapshot()["recent_deadlocks"]
    assert deadlocks and all(step["thread"].startswith("transfer") for d in deadlocks for step in d["cycle"])
    assert bank.stats.report(bank.balances())["lost_updates"] == 0
    assert desk.audit()["consistent"]
