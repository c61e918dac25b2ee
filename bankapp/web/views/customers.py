"""Customers: two accounts each, and a withdrawal checked against their sum (the write-skew lesson)."""

from flask_openapi3 import Tag

from ...lab.customers import accounts_of
from ..schemas import CustomerOut, CustomerPath, CustomerWithdrawIn, CustomerWithdrawOut, Problem
from . import lab
from .dispatch import Blueprint as APIBlueprint

bp = APIBlueprint(
    "customers", __name__, abp_tags=[Tag(name="customers", description="two accounts each, one rule over both")]
)


@bp.get("/customers/<customer_id>", responses={200: CustomerOut, 404: Problem})
def get_customer(path: CustomerPath):
    """The customer's two accounts and their combined balance (read one after the other)."""
    bank = lab().bank
    pair = accounts_of(bank.store.account_ids(), path.customer_id)
    balances = [{"id": each, "balance": bank.balance(each)} for each in pair]
    return {"customer": path.customer_id, "accounts": balances, "combined": sum(b["balance"] for b in balances)}


@bp.post(
    "/customers/<customer_id>/withdraw",
    responses={200: CustomerWithdrawOut, 404: Problem, 409: Problem, 422: Problem, 503: Problem},
)
def customer_withdraw(path: CustomerPath, body: CustomerWithdrawIn):
    """Withdraw from one of the customer's accounts if the two balances together cover it, under
    `deposit_guard`: read both, check the sum, wait `race_window_ms`, debit. 409 when the sum does not cover it;
    two at once on the two accounts can both pass the check (write skew) unless the guard covers both."""
    balance, checked = lab().bank.customer_withdraw(path.customer_id, body.account, body.amount)
    return {"customer": path.customer_id, "account": body.account, "balance": balance, "checked_combined": checked}
