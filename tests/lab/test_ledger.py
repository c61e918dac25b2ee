"""The ledger's lost updates: money a transfer holds while it waits is pending, not lost."""

import threading
import time

from bankapp.lab.lab import Lab
from bankapp.settings import load

AMOUNT = 7


def wait_until(condition, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.01)


def lost_updates(lab: Lab) -> dict[str, int]:
    report = lab.stats()["deposits"]
    return {"all": report["lost_updates"], **{k: v["lost_updates"] for k, v in report["per_account"].items()}}


def test_a_transfer_stuck_after_its_debit_loses_no_deposit():
    """`naive` debits `acc-00`, then waits for `acc-01`, which another thread holds: the debit is pending."""
    lab = Lab(load({"transfer_policy": "naive", "race_window_ms": 0, "lock_timeout_ms": 60_000}, environ={}))
    held = lab.locks.acquire("acc-01", timeout=10, check_after=None)  # another thread holds the lock
    result = {}
    sender = threading.Thread(target=lambda: result.update(lab.transfers.transfer("acc-00", "acc-01", AMOUNT)))
    sender.start()
    try:
        wait_until(lambda: lab.store.read("acc-00") == lab.ledger.initial_balance - AMOUNT)
        stuck = lost_updates(lab)
    finally:
        held.release()
        sender.join(30)
    assert not sender.is_alive()
    assert stuck["all"] == 0, stuck  # before: 7, the debit counted as a lost deposit of acc-00
    assert stuck["acc-00"] == 0
    assert result["amount"] == AMOUNT
    assert lost_updates(lab)["all"] == 0
    assert lab.ledger.pending == {"acc-00": 0, "acc-01": 0}


def test_a_transfer_that_gives_up_leaves_nothing_pending():
    """The credit cannot be had in time: the debit is put back, and nothing stays pending or lost."""
    lab = Lab(load({"transfer_policy": "naive", "race_window_ms": 0, "lock_timeout_ms": 200}, environ={}))
    held = lab.locks.acquire("acc-01", timeout=10, check_after=None)
    errors = []

    def send():
        try:
            lab.transfers.transfer("acc-00", "acc-01", AMOUNT)
        except Exception as error:  # the lock timeout we expect
            errors.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    sender.join(30)
    held.release()
    assert not sender.is_alive() and errors
    assert lab.store.read("acc-00") == lab.ledger.initial_balance
    assert lost_updates(lab)["all"] == 0
    assert all(delta == 0 for delta in lab.ledger.pending.values())
