"""The transfer desk: transfers under the policy in force, their counters, and the bank audit.

How a transfer takes its locks, and which condition of deadlock each policy
breaks, is in `policies`; here a transfer is checked, run under its policy,
rolled back if it fails, and counted. The audit reads every balance under
every account's lock and checks the bank's invariants.

Transfers and audits pass the lab's `Gate` (see `lab`), as deposits do.

`TransferDesk` knows nothing of HTTP; unit tests drive it with plain threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ...settings import Config
from ..admission import Gate
from ..bank import InsufficientFunds
from ..guards import GuardTimeout
from ..ledger import LedgerStats
from ..locks import AccountLock, DeadlockVictim, LockTable
from ..store import Store, UnknownAccount
from .policies import POLICIES, Move, Policy


class SameAccount(ValueError):
    def __init__(self, account_id: str):
        super().__init__(f"a transfer needs two different accounts; from and to are both {account_id}")
        self.account_id = account_id


class TransferCounters:
    """Transfer and audit counters under their own small lock, exact under any policy."""

    NAMES = (
        "committed",
        "deadlock_victims",
        "lock_timeouts",
        "retries",
        "insufficient_funds",
        "audits",
        "wrong_total_reads",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self.NAMES, 0)
            self._in_flight = 0
            self._peak_in_flight = 0

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {**self._counts, "in_flight": self._in_flight, "peak_in_flight": self._peak_in_flight}


def audit_answer(total: int, expected: int, negative: list[str], policy: str, accounts: int) -> dict[str, Any]:
    """What `/audit` answers, whichever store read the balances."""
    return {
        "total": total,
        "expected_total": expected,
        "difference": total - expected,
        "negative_accounts": negative,
        "consistent": total == expected and not negative,
        "policy": policy,
        "accounts": accounts,
    }


class TransferDesk:
    """Moves money between accounts under `transfer_policy`, and audits the bank."""

    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        ledger: LedgerStats,
        locks: LockTable,
        gate: Gate,
        policies: Mapping[str, Policy] = POLICIES,  # with a trainee's lock order plugged in, `exercise` too
    ):
        self.store = store
        self.policies = policies
        self._config = config
        self.ledger = ledger
        self.locks = locks
        self.gate = gate
        self.counters = TransferCounters()

    def transfer(self, source: str, target: str, amount: int) -> dict[str, Any]:
        """Move `amount` cents from `source` to `target`; all of it or nothing."""
        config = self._config()
        for account in (source, target):
            if not self.store.exists(account):
                raise UnknownAccount(account)
        if source == target:
            raise SameAccount(source)
        policy = self.policies[config.transfer_policy]
        m = Move(self, config, source, target, amount)
        with self.gate.enter("transfer"):
            self.counters.started()
            try:
                policy.move(m)
                balances = {source: self.store.read(source), target: self.store.read(target)}
            except BaseException as error:
                m.undo(relock=policy.locks)  # still holding what it held: nobody saw the half-done transfer
                self._count_failure(error)
                raise
            finally:
                m.unlock_all()
                self.counters.finished()
            self.ledger.landed([(source, -amount), (target, amount)], pending=m.changes)
            self.counters.add("committed")
        return {
            "from": {"id": source, "balance": balances[source]},
            "to": {"id": target, "balance": balances[target]},
            "amount": amount,
            "policy": policy.name,
            "retries": m.retries,
        }

    def _count_failure(self, error: BaseException) -> None:
        if isinstance(error, DeadlockVictim):
            self.counters.add("deadlock_victims")
        elif isinstance(error, GuardTimeout):
            self.counters.add("lock_timeouts")
        elif isinstance(error, InsufficientFunds):
            self.counters.add("insufficient_funds")

    def expected_total(self, balances: dict[str, int]) -> int:
        """What the bank should hold: the opening balances plus acknowledged deposits minus withdrawals.

        Transfers only move money, so they never change it.
        """
        deposits = self.ledger.report(balances)
        opening = self.ledger.initial_balance * len(balances)
        acknowledged: int = deposits["acknowledged_amount"]
        withdrawn: int = deposits["withdrawn_amount"]
        return opening + acknowledged - withdrawn

    def audit(self) -> dict[str, Any]:
        """Read every balance under every account's lock, taken in id order.

        Holding all the locks at once, the audit sees the bank between
        transfers, never inside one that takes locks: the total must equal
        the expected total and no balance may be negative (the bank
        invariants Jepsen checks). It takes the locks in the same order as
        `ordered`, so it cannot deadlock with it; against `naive` it can be
        in a cycle, and then it may be the victim (409). A wrong total means
        the policy let money be in flight (`release-first`) or created or
        destroyed it (`unsafe`).

        Deposits and withdrawals under an excluding guard take the same
        account locks (and are counted before they let go), so the audit
        sees each of them wholly or not at all; under a guard that does not
        exclude they race with the audit as they race with each other.
        """
        config = self._config()
        timeout, check_after = config.lock_timeout(), config.deadlock_check_ms / 1000
        held: list[AccountLock] = []
        with self.gate.enter("audit"):
            try:
                for account in sorted(self.store.account_ids()):
                    held.append(self.locks.acquire(account, timeout, check_after))
                balances = {account: self.store.read(account) for account in self.store.account_ids()}
                # still under every lock: a deposit is counted before it lets its account lock go
                expected = self.expected_total(balances)
            finally:
                while held:
                    held.pop().release()
            total = sum(balances.values())
            negative = sorted(account for account, balance in balances.items() if balance < 0)
            self.counters.add("audits")
            if total != expected:
                self.counters.add("wrong_total_reads")
        return audit_answer(total, expected, negative, config.transfer_policy, len(balances))

    def debug_locks(self) -> dict[str, Any]:
        return {"policy": self._config().transfer_policy, **self.locks.snapshot()}

    def stats(self) -> dict[str, Any]:
        """Counters for `/stats`; `total` is read at once, without locks (exact at rest)."""
        balances = self.store.snapshot()
        total = sum(balances.values())
        expected = self.expected_total(balances)
        return {
            "policy": self._config().transfer_policy,
            **self.counters.report(),
            "deadlocks": self.locks.detected,
            "total": total,
            "expected_total": expected,
            "total_conserved": total == expected,
            "negative_balances": sum(1 for balance in balances.values() if balance < 0),
        }

    def reset(self) -> None:
        self.counters.reset()
        self.locks.reset()
