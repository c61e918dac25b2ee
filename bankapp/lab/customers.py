"""Customers: two accounts each, and one rule over both (the write-skew lesson).

Customer `cust-00` owns `acc-00` and `acc-01`, `cust-01` owns `acc-02` and
`acc-03`, and so on (with an odd number of accounts the last has no
customer). The rule: a withdrawal from either account is allowed while the
customer's combined balance covers it, so one account may go below zero as
long as the other makes up for it, and the pair's sum never does.

`Bank.customer_withdraw` checks the rule, then acts: it reads both
balances, checks their sum, waits `race_window_ms`, and debits one account.
Two withdrawals from the two accounts of one customer each read both
balances, each sees the sum cover its amount, and each debits its own
account: neither wrote what the other read, so nothing was overwritten (no
lost update), yet the sum goes below zero. That is write skew (Adya's
G2-item; Hermitage's case of that name). A guard on the debited account
alone does not stop it, since the two debit different accounts; what
stops it is guarding what the check read: both accounts (`lock`,
`row-lock`, `advisory-lock` take both, in id order), or a SERIALIZABLE
transaction (`serializable`), which PostgreSQL aborts with `40001` when
two of them read what the other writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from .store import InsufficientFunds


class UnknownCustomer(KeyError):
    def __init__(self, customer_id: str):
        super().__init__(customer_id)
        self.customer_id = customer_id

    def __str__(self) -> str:
        return f"no customer {self.customer_id!r}"


class NotTheCustomersAccount(ValueError):
    def __init__(self, customer_id: str, account_id: str, accounts: tuple[str, str]):
        super().__init__(
            f"account: {account_id!r} is not an account of {customer_id}, whose accounts are {' and '.join(accounts)}"
        )
        self.customer_id = customer_id
        self.account_id = account_id
        self.accounts = accounts


class CombinedFundsShort(InsufficientFunds):
    """The customer's two balances together do not cover the withdrawal."""

    def __init__(self, customer_id: str, account_id: str, balances: dict[str, int], amount: int):
        combined = sum(balances.values())
        super().__init__(account_id, combined, amount)
        self.args = (
            f"customer {customer_id}'s accounts {' and '.join(balances)} hold {combined} cents together, "
            f"fewer than the {amount} asked for",
        )
        self.customer_id = customer_id
        self.balances = balances


def customer_ids(account_ids: Sequence[str]) -> list[str]:
    width = max(2, len(str(len(account_ids) // 2 - 1)))
    return [f"cust-{i:0{width}d}" for i in range(len(account_ids) // 2)]


def accounts_of(account_ids: Sequence[str], customer_id: str) -> tuple[str, str]:
    """The customer's two accounts, in id order (the order every guard takes them in)."""
    customers = customer_ids(account_ids)
    if customer_id not in customers:
        raise UnknownCustomer(customer_id)
    index = customers.index(customer_id)
    return account_ids[2 * index], account_ids[2 * index + 1]


def pair_for(account_ids: Sequence[str], customer_id: str, account_id: str) -> tuple[str, str]:
    """The customer's accounts, `account_id` among them, or the refusal that says why not."""
    pair = accounts_of(account_ids, customer_id)
    if account_id not in pair:
        raise NotTheCustomersAccount(customer_id, account_id, pair)
    return pair


def covered(customer_id: str, account_id: str, balances: dict[str, int], amount: int) -> int:
    """The rule: the combined balance covers `amount`; returns the combined balance read."""
    if sum(balances.values()) < amount:
        raise CombinedFundsShort(customer_id, account_id, balances, amount)
    return sum(balances.values())
