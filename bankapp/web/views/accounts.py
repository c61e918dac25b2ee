"""Accounts: balances, deposit, withdraw, batch deposit."""

from flask_openapi3 import Tag

from ..idempotency import idempotent
from ..schemas import AccountPath, AccountsOut, AmountIn, BalanceOut, BatchIn, Problem
from . import lab
from .dispatch import Blueprint as APIBlueprint

bp = APIBlueprint("accounts", __name__, abp_tags=[Tag(name="accounts", description="balances and deposits")])

ERRORS: dict[int | str, type[Problem]] = {404: Problem, 409: Problem, 422: Problem, 503: Problem}


@bp.get("/accounts", responses={200: AccountsOut})
def list_accounts():
    """Every account and its balance, with the total."""
    balances = lab().bank.balances()
    return {"accounts": [{"id": k, "balance": v} for k, v in balances.items()], "total": sum(balances.values())}


@bp.get("/accounts/<account_id>", responses={200: BalanceOut, 404: Problem})
def get_account(path: AccountPath):
    """One account's balance."""
    return {"id": path.account_id, "balance": lab().bank.balance(path.account_id)}


@bp.post("/accounts/<account_id>/deposit", responses={200: BalanceOut, **ERRORS})
@idempotent
def deposit(path: AccountPath, body: AmountIn):
    """Read the balance, wait `race_window_ms`, write balance + amount, under `deposit_guard`."""
    return {"id": path.account_id, "balance": lab().bank.deposit(path.account_id, body.amount)}


@bp.post("/accounts/<account_id>/withdraw", responses={200: BalanceOut, **ERRORS})
@idempotent
def withdraw(path: AccountPath, body: AmountIn):
    """Check the balance covers the amount, then debit it: 409 when it does not."""
    return {"id": path.account_id, "balance": lab().bank.withdraw(path.account_id, body.amount)}


@bp.post("/accounts/<account_id>/batch-deposit", responses={200: BalanceOut, **ERRORS})
def batch_deposit(path: AccountPath, body: BatchIn):
    """Hold the account's guard and deposit each amount: `rlock` succeeds, `lock` self-deadlocks (503)."""
    return {"id": path.account_id, "balance": lab().bank.batch_deposit(path.account_id, body.amounts)}
