"""The scenarios a replay can run: which threads, doing what, and what the end state says.

Each thread is one call of the domain's own code on the replay's lab, the
same call a request makes:

- `deposit`: 2 or 3 deposits into `acc-00` (`Bank.deposit`): the lost update,
  and a lock that makes the second wait;
- `withdraw`: 2 or 3 withdrawals of 60 % of the balance (`Bank.withdraw`):
  check-then-act, both checks pass and the account goes below zero;
- `batch`: one batch deposit of `[1, 2]` (`Bank.batch_deposit`): `rlock`
  lets its owner in again, `lock` waits for itself;
- `transfer`: 2 or 3 transfers in a ring (`TransferDesk.transfer`): under
  `naive` they deadlock and the detector names the cycle, under `ordered`
  they cannot;
- `audit`: a transfer and an audit (`TransferDesk.audit`): `release-first`
  lets the audit see money in flight;
- `write-skew`: 2 withdrawals by customer `cust-00`, one from each of its
  accounts `acc-00` and `acc-01` (`Bank.customer_withdraw`), each checking
  the pair's sum before it debits its own account: both checks pass and
  the sum goes below zero, though neither wrote what the other read
  (write skew);
- `checkout`: 2 or 3 checkouts of one flash-sale unit (`Shop.checkout`)
  against a capacity of one fewer: `semaphore` admits that many and makes
  the last wait, `unsafe` lets them all in at once (over capacity).

The first three and `write-skew` run under a deposit guard, the next two under a transfer
policy, the checkout under a checkout guard. `backoff` is left out: it retries after random waits, and no schedule can
fix the order of a random number.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..lab.lab import Lab
from ..settings import Config
from . import calls

DEPOSIT_GUARDS = ("unsafe", "lock", "rlock", "semaphore")
POLICIES = ("naive", "ordered", "release-first", "unsafe")
#: Cents each transfer moves.
TRANSFER_AMOUNT = 5
BATCH = [1, 2]


@dataclass(frozen=True)
class Job:
    """What one thread does (`run`, on the replay's lab), in words, and its answer in words."""

    does: str
    run: Callable[[Lab], Any]
    answer: Callable[[Any], str]


@dataclass(frozen=True)
class Scenario:
    name: str
    shows: str
    setting: str  # the setting `--guard` chooses: deposit_guard or transfer_policy
    guards: tuple[str, ...]
    least: int  # threads at least
    most: int  # threads at most
    jobs: Callable[[Config, int], list[Job]]  # what each of n threads does
    #: the schedule a replay runs when none is given, made from each thread's named steps (see `default_schedule`)
    default: str
    #: settings the scenario sets itself, for n threads (None: the settings in force)
    settings: Callable[[int], dict] | None = None

    def findings(self, final: dict, answers: list[dict]) -> list[str]:
        return FINDINGS[self.name](final, answers)


def _balance(value: int) -> str:
    return f"balance {value}"


def _deposits(config: Config, n: int) -> list[Job]:
    return [
        Job(f"deposit {amount} into acc-00", functools.partial(calls.deposit, "acc-00", amount), _balance)
        for amount in (10, 20, 30)[:n]
    ]


def withdrawal_amount(config: Config) -> int:
    """More than half the opening balance: two withdrawals fit one check each, never both."""
    return max(1, config.initial_balance * 3 // 5)


def _withdrawals(config: Config, n: int) -> list[Job]:
    amount = withdrawal_amount(config)
    return [
        Job(f"withdraw {amount} from acc-00", lambda lab: lab.bank.withdraw("acc-00", amount), _balance)
        for _ in range(n)
    ]


#: The customer of `write-skew`, and its two accounts (see `lab.customers`).
CUSTOMER = "cust-00"
PAIR = ("acc-00", "acc-01")


def skew_amount(config: Config) -> int:
    """More than half the pair's opening sum: the sum covers one withdrawal, never both."""
    return max(1, 2 * config.initial_balance * 3 // 5)


def pair_sum(final: dict) -> int:
    """The pair's combined balance at the end of a replay (both accounts are written, so `final` has both)."""
    return sum(final["balances"][account] for account in PAIR)


def _skewed(answer) -> str:
    balance, combined = answer
    return f"balance {balance}, after a check that read the pair's sum as {combined}"


def _customer_withdrawals(config: Config, n: int) -> list[Job]:
    amount = skew_amount(config)
    return [
        Job(
            f"{CUSTOMER} withdraws {amount} from {account} if {' + '.join(PAIR)} covers it",
            functools.partial(calls.customer_withdraw, CUSTOMER, account, amount),
            _skewed,
        )
        for account in PAIR[:n]
    ]


def _batch(config: Config, n: int) -> list[Job]:
    return [Job(f"batch deposit {BATCH} into acc-00", lambda lab: lab.bank.batch_deposit("acc-00", BATCH), _balance)]


def _moved(answer: dict) -> str:
    return f"{answer['from']['id']} {answer['from']['balance']}, {answer['to']['id']} {answer['to']['balance']}"


def _ring(config: Config, n: int) -> list[Job]:
    """Thread i moves money from acc-0i to the next account, the last back to acc-00: a ring of n."""
    jobs = []
    for i in range(n):
        source, target = f"acc-{i:02d}", f"acc-{(i + 1) % n:02d}"
        jobs.append(
            Job(
                f"transfer {TRANSFER_AMOUNT} from {source} to {target}",
                functools.partial(calls.transfer, source, target, TRANSFER_AMOUNT),
                _moved,
            )
        )
    return jobs


def _audited(answer: dict) -> str:
    return f"total {answer['total']}, expected {answer['expected_total']} (difference {answer['difference']})"


def _transfer_and_audit(config: Config, n: int) -> list[Job]:
    return [
        Job(
            f"transfer {TRANSFER_AMOUNT} from acc-00 to acc-01",
            lambda lab: lab.transfers.transfer("acc-00", "acc-01", TRANSFER_AMOUNT),
            _moved,
        ),
        Job("audit every account", lambda lab: lab.transfers.audit(), _audited),
    ]


#: What each checkout buys.
CHECKOUT_SKU = "flash-sale"


def checkout_settings(n: int) -> dict:
    """n checkouts against a capacity of n - 1: one of them must wait (under a semaphore) or it is over capacity."""
    return {"capacity": max(1, n - 1), "max_waiting": n, "admission_timeout_ms": 1000}


def _checkouts(config: Config, n: int) -> list[Job]:
    return [
        Job(
            f"check out 1 {CHECKOUT_SKU}",
            lambda lab: lab.shop.checkout(CHECKOUT_SKU, 1).as_dict(),
            lambda order: f"order {order['order_id']}, {order['remaining']} left",
        )
        for _ in range(n)
    ]


def _refused(answers: list[dict]) -> list[str]:
    return [a["thread"] for a in answers if not a["ok"]]


def _deposit_findings(final: dict, answers: list[dict]) -> list[str]:
    lost = final["lost_updates"]
    if lost > 0:
        return [
            f"{lost} cents lost: {final['acknowledged_amount']} cents acknowledged, the balance grew "
            f"{final['balance_change']}: a write from a stale read erased a deposit (a lost update)"
        ]
    return [f"nothing lost: the balance grew by all {final['acknowledged_amount']} cents acknowledged"]


def _withdraw_findings(final: dict, answers: list[dict]) -> list[str]:
    balance = final["balances"]["acc-00"]
    found = []
    if balance < 0:
        found.append(
            f"acc-00 is overdrawn: {balance} cents. Each withdrawal checked the balance before any of them "
            "wrote, and acted on a check that was no longer true (check-then-act)"
        )
    else:
        found.append(f"acc-00 holds {balance} cents: no withdrawal acted on a stale check")
    if final["lost_updates"] > 0:
        found.append(f"and {final['lost_updates']} cents of withdrawals were lost: a write erased another")
    refused = _refused(answers)
    if refused:
        found.append(f"refused: {', '.join(refused)} (its check saw the balance after the others' withdrawals)")
    return found


def _write_skew_findings(final: dict, answers: list[dict]) -> list[str]:
    total, pair = pair_sum(final), " + ".join(PAIR)
    if total < 0:
        found = [
            f"{pair} is {total} cents, below zero: each withdrawal checked the pair's sum, each saw it cover its "
            "amount, and each debited its own account. Neither wrote what the other read, so nothing was "
            "overwritten (no lost update); the rule over both broke all the same (write skew)"
        ]
    else:
        found = [f"{pair} is {total} cents: no withdrawal acted on a check the other made untrue"]
    refused = _refused(answers)
    if refused:
        found.append(f"refused: {', '.join(refused)} (its check saw the pair's sum after the other's withdrawal)")
    return found


def _batch_findings(final: dict, answers: list[dict]) -> list[str]:
    if answers[0]["ok"]:
        return [f"the batch went through: the balance grew {final['balance_change']} cents"]
    return [f"the batch was refused and nothing of it stayed: the balance grew {final['balance_change']} cents"]


def _transfer_findings(final: dict, answers: list[dict]) -> list[str]:
    found = []
    if final["deadlocks"]:
        found.append(f"{final['deadlocks']} deadlock detected; its victim rolled back and the others went on")
    if final["total"] == final["expected_total"]:
        found.append(f"the total is conserved: {final['total']}")
    else:
        found.append(
            f"the total is {final['total']}, not {final['expected_total']}: "
            f"{final['total'] - final['expected_total']:+d} cents created or destroyed"
        )
    return found


def _audit_findings(final: dict, answers: list[dict]) -> list[str]:
    audit = next((a for a in answers if a["thread"] == "b"), None)
    found = []
    if audit and audit["ok"] and audit["result"]["difference"]:
        found.append(
            f"the audit saw {audit['result']['total']}, {-audit['result']['difference']} cents short: "
            "the money was in flight, in neither account, between the debit and the credit"
        )
    elif audit and audit["ok"]:
        found.append("the audit saw the right total: no money in flight while it read")
    return found + _transfer_findings(final, answers)[-1:]


def _checkout_findings(final: dict, answers: list[dict]) -> list[str]:
    found = []
    if final["peak_in_flight"] > final["capacity"]:
        found.append(
            f"{final['peak_in_flight']} checkouts were in flight at once, over the capacity of {final['capacity']}: "
            "nothing limited how many got in"
        )
    else:
        found.append(f"at most {final['peak_in_flight']} in flight at once, within the capacity of {final['capacity']}")
    lost = final["initial_stock"] - final["sold"] - final["stock"]
    if lost:
        found.append(f"{final['sold']} sold but the stock went down by {final['initial_stock'] - final['stock']}")
    return found


FINDINGS = {
    "checkout": _checkout_findings,
    "deposit": _deposit_findings,
    "withdraw": _withdraw_findings,
    "write-skew": _write_skew_findings,
    "batch": _batch_findings,
    "transfer": _transfer_findings,
    "audit": _audit_findings,
}

SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "deposit",
            "deposits, each a read-modify-write of one balance: without a guard, a write can erase another "
            "(a lost update)",
            "deposit_guard",
            DEPOSIT_GUARDS,
            2,
            3,
            _deposits,
            "a.read b.read a.write b.write",
        ),
        Scenario(
            "withdraw",
            "withdrawals, each checks the balance, then acts: without a guard, both checks can pass and the "
            "account goes below zero (check-then-act)",
            "deposit_guard",
            DEPOSIT_GUARDS,
            2,
            3,
            _withdrawals,
            "a.read b.read a.read a.write b.read b.write",
        ),
        Scenario(
            "write-skew",
            "two withdrawals from the two accounts of one customer, each checks the pair's sum, then debits its own "
            "account: without a guard on both, both checks pass and the sum goes below zero (write skew)",
            "deposit_guard",
            DEPOSIT_GUARDS,
            2,
            2,
            _customer_withdrawals,
            "a.read b.read a.read a.write b.read b.write",
        ),
        Scenario(
            "batch",
            "a batch deposit holds the guard and takes it again for each amount: rlock lets its owner in again, "
            "lock waits for itself (a self-deadlock)",
            "deposit_guard",
            DEPOSIT_GUARDS,
            1,
            1,
            _batch,
            "a.read a.read a.write a.read a.write",
        ),
        Scenario(
            "transfer",
            "transfers in a ring, each holding one account's lock while it asks for the next: under naive they can "
            "deadlock",
            "transfer_policy",
            POLICIES,
            2,
            3,
            _ring,
            "round-robin",
        ),
        Scenario(
            "audit",
            "an audit between a transfer's debit and its credit: under release-first it sees money in flight",
            "transfer_policy",
            POLICIES,
            2,
            2,
            _transfer_and_audit,
            "debit-audit-credit",
        ),
        Scenario(
            "checkout",
            "checkouts of the flash sale against a capacity of one fewer than the threads: without a limit "
            "(unsafe) more are in flight at once than the capacity",
            "checkout_guard",
            DEPOSIT_GUARDS,
            2,
            3,
            _checkouts,
            "round-robin",
            checkout_settings,
        ),
    )
}


def default_schedule(scenario: Scenario, named: dict[str, list[str]]) -> str:
    """The schedule a replay runs when none is given, for the threads `named` (name -> step kinds).

    A written default is used as it is; `round-robin` takes one step of
    each thread in turn; `debit-audit-credit` runs the transfer up to its
    first write, then the whole audit, then the rest of the transfer.
    """
    threads = list(named)
    if scenario.default == "round-robin":
        words = []
        for i in range(max(len(named[t]) for t in threads)):
            words += [f"{t}.{named[t][i]}" for t in threads if i < len(named[t])]
        return " ".join(words)
    if scenario.default == "debit-audit-credit":
        a, b = named["a"], named["b"]
        debit = a.index("write") + 1
        return " ".join([f"a.{k}" for k in a[:debit]] + [f"b.{k}" for k in b] + [f"a.{k}" for k in a[debit:]])
    return scenario.default
