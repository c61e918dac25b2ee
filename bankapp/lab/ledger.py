"""Counters kept exact whichever guard is under test.

Every counter update takes the counters' own small lock, never the guard
under test, so `/stats` tells the truth about an unguarded run. A deposit is
counted once it is acknowledged (its write is done), so at rest
`expected_balance - balance` is exactly the money that acknowledged updates
lost.

A transfer is acknowledged only when it answers, but it changes balances
before that. What it has changed meanwhile is a known *pending* change, not
a lost update: a transfer stuck in a deadlock holds its debit, and the
ledger must not blame that money on the deposits.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol


class Tally(Protocol):
    """What the bank counts: `LedgerStats` here, `DatabaseLedger` in the accounts' rows in PostgreSQL."""

    def deposited(self, account_id: str, amount: int) -> None: ...

    def undeposited(self, account_id: str, amount: int) -> None: ...

    def withdrew(self, account_id: str, amount: int) -> None: ...

    def refused(self, reason: str) -> None: ...

    def reset(self) -> None: ...


class LedgerStats:
    """What the bank acknowledged, per account, against what it holds."""

    def __init__(self, account_ids: Sequence[str], initial_balance: int):
        self._lock = threading.Lock()
        self._ids = list(account_ids)
        self.initial_balance = initial_balance
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.deposits: Counter[str] = Counter()  # account -> acknowledged deposits
            self.deposit_amount: Counter[str] = Counter()  # account -> acknowledged cents
            self.withdrawals: Counter[str] = Counter()
            self.withdrawal_amount: Counter[str] = Counter()
            self.rejected: Counter[str] = Counter()  # reason -> count
            self.net: Counter[str] = Counter()  # account -> every acknowledged change
            self.pending: Counter[str] = Counter()  # account -> changes of transfers that have not answered yet

    def deposited(self, account_id: str, amount: int) -> None:
        with self._lock:
            self.deposits[account_id] += 1
            self.deposit_amount[account_id] += amount
            self.net[account_id] += amount

    def undeposited(self, account_id: str, amount: int) -> None:
        """A deposit taken back (a batch refused part way): as if never acknowledged."""
        with self._lock:
            self.deposits[account_id] -= 1
            self.deposit_amount[account_id] -= amount
            self.net[account_id] -= amount

    def withdrew(self, account_id: str, amount: int) -> None:
        with self._lock:
            self.withdrawals[account_id] += 1
            self.withdrawal_amount[account_id] += amount
            self.net[account_id] -= amount

    def in_flight(self, account_id: str, delta: int) -> None:
        """A transfer changed a balance (or put a change back) and has not answered yet."""
        with self._lock:
            self.pending[account_id] += delta

    def landed(self, legs: list[tuple[str, int]], pending: list[tuple[str, int]]) -> None:
        """A transfer answered: its `legs` are acknowledged, its `pending` changes no longer in flight."""
        with self._lock:
            for account_id, delta in pending:
                self.pending[account_id] -= delta
            for account_id, delta in legs:
                self.net[account_id] += delta

    def refused(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def report(self, balances: dict[str, int]) -> dict[str, Any]:
        """Deposit counters and lost updates, per account and in all.

        `lost_updates` is in cents: what acknowledged changes, and the
        pending changes of transfers still in flight, should have made of
        the balance minus what it is. Positive: updates were lost; negative:
        something was applied that nobody was told about.
        """
        with self._lock:
            per_account = {}
            for account_id in self._ids:
                change = balances[account_id] - self.initial_balance
                per_account[account_id] = {
                    "balance": balances[account_id],
                    "acknowledged": self.deposits[account_id],
                    "acknowledged_amount": self.deposit_amount[account_id],
                    "withdrawn_amount": self.withdrawal_amount[account_id],
                    "balance_change": change,
                    "lost_updates": self.net[account_id] + self.pending[account_id] - change,
                }
            return {
                "acknowledged": sum(self.deposits.values()),
                "acknowledged_amount": sum(self.deposit_amount.values()),
                "withdrawals": sum(self.withdrawals.values()),
                "withdrawn_amount": sum(self.withdrawal_amount.values()),
                "balance_change": sum(row["balance_change"] for row in per_account.values()),
                "lost_updates": sum(row["lost_updates"] for row in per_account.values()),
                "accounts_with_lost_updates": sum(1 for row in per_account.values() if row["lost_updates"]),
                "rejected": dict(self.rejected),
                "lock_timeouts": self.rejected["lock_timeout"],
                "self_deadlocks": self.rejected["self_deadlock"],
                "per_account": per_account,
            }
