"""What a replay's threads call, each a function of the lab last, so that `functools.partial` binds the rest."""

from __future__ import annotations

from typing import Any

from ..lab.lab import Lab


def deposit(account: str, amount: int, lab: Lab) -> int:
    return lab.bank.deposit(account, amount)


def transfer(source: str, target: str, amount: int, lab: Lab) -> dict[str, Any]:
    return lab.transfers.transfer(source, target, amount)


def customer_withdraw(customer: str, account: str, amount: int, lab: Lab) -> tuple[int, int]:
    return lab.bank.customer_withdraw(customer, account, amount)
