"""Deposits: Jepsen's counter check, per account.

The final balance change must lie between the sum of acknowledged deposits
(they certainly happened) and the sum of attempted ones (those without a
definite answer may have happened too). Below: acknowledged deposits were
lost. Above: something was applied twice. A deposit retried after a timeout
is one attempt, so a retry without an `Idempotency-Key` that the server
applied on top of the first try shows up above the bound (the verdict then
names the retries as the likely cause); with a key, the retry replays and
the bound holds.

Transfers on the same accounts are part of the bounds (see `money`), and a
gap is the deposits' only when they are to blame for it. Audits that read a
wrong total while deposits raced are theirs too.
"""

from __future__ import annotations

from typing import Any

from .. import keys as k
from .model import Run, Verdict, listing, lost_sentence, percent
from .money import BOTH, DEPOSITS, TRANSFERS, Money, audit_owner


def judge_deposits(run: Run, money: Money | None, verdict: Verdict) -> dict:
    acknowledged_amount = run.total(k.DEPOSIT, k.OK_AMOUNT)
    attempted_amount = run.total(k.DEPOSIT, k.SENT_AMOUNT) - run.total(k.DEPOSIT, k.FAILED_AMOUNT)
    section: dict[str, Any] = {
        "acknowledged": run.total(k.DEPOSIT, k.OK),
        "attempted": run.total(k.DEPOSIT, k.SENT) - run.total(k.DEPOSIT, k.FAILED),
        "acknowledged_amount": acknowledged_amount,
        "attempted_amount": attempted_amount,
        "balance_change": None,
        "lost_updates": None,
        "lost_percent": None,
        "lost_deposits": None,
        "applied_twice": None,
        "wrong_total_reads": 0,
        "unit_amount": run.unit_amount,
        "self_deadlocks": run.total(k.BATCH, k.SELF_DEADLOCK),
        **{field: run.total(k.DEPOSIT, field) for field in k.RETRY_FIELDS},
        "server": server_deposits(run),
        "per_account": {},
    }
    if money is None:
        verdict.anomaly("deposits: the balances could not be read (GET /accounts), so nothing was checked")
    else:
        check_balances(run, money, section, verdict)
    if section["self_deadlocks"]:
        verdict.anomaly(
            f"deposits: {section['self_deadlocks']:,} batch deposits self-deadlocked (503): the thread already "
            "held the account's non-reentrant guard"
        )
    check_audits(run, money, section, verdict)
    compare_with_server(run, section, verdict)
    return section


def check_balances(run: Run, money: Money, section: dict, verdict: Verdict) -> None:
    for name in money.unlisted:
        verdict.anomaly(f"deposits: {name} got deposits but the server does not list it")
    ours = (DEPOSITS, BOTH)
    for account in money.accounts.values():
        if not (account.deposited or account.owner in ours):
            continue
        row: dict[str, Any] = {
            "acknowledged_amount": account.deposits[0],
            "attempted_amount": account.deposits[1],
            "balance_change": account.change,
            "lowest_expected": account.low,
            "highest_expected": account.high,
            "lost_updates": max(0, -account.gap) if account.owner in ours else 0,
            "applied_twice": max(0, account.gap) if account.owner in ours else 0,
        }
        if account.owner:
            row["blamed_on"] = account.owner
        section["per_account"][account.id] = row
    lost, extra = money.lost_and_extra(*ours)
    section["balance_change"] = money.total_change
    section["lost_updates"] = lost
    section["applied_twice"] = extra
    section["lost_percent"] = percent(lost, section["acknowledged_amount"])
    section["server_count_includes_transfers"] = bool(money.blamed_on(TRANSFERS, BOTH))
    if run.unit_amount:
        section["lost_deposits"] = lost // run.unit_amount
    own_lost, own_extra = money.lost_and_extra(DEPOSITS)  # a gap both could have made is told once, by transfers
    if own_lost:
        verdict.anomaly(
            "deposits: " + lost_sentence(own_lost, section["acknowledged_amount"], run.unit_amount),
            operations=run.operations(own_lost, k.DEPOSIT),
        )
    if own_extra:
        doubled = [account for account in money.blamed_on(DEPOSITS) if account.gap > 0]
        verdict.anomaly(extra_sentence(run, money, doubled, own_extra), operations=run.operations(own_extra, k.DEPOSIT))


def extra_sentence(run: Run, money: Money, doubled: list, extra: int) -> str:
    names = [account.id for account in doubled]
    if money.suspects.deposits and any(account.transferred for account in doubled):
        cause = f"a deposit under {money.suspects.deposits} takes no account lock, so it wrote over a transfer's debit"
        return (
            f"deposits: {listing(names)} grew by {extra:,} cents more than the deposits and transfers on them "
            f"could explain: {cause}" + retry_cause(run, names)
        )
    return (
        f"deposits: {listing(names)} grew by {extra:,} cents more than every attempted deposit "
        "could explain: something was applied twice" + retry_cause(run, names)
    )


def retry_cause(run: Run, names: list[str]) -> str:
    """The likely cause of money applied twice, when clients retried without an Idempotency-Key."""
    retries = sum(run.by_subject(k.DEPOSIT, k.KEYLESS_RETRIES).get(name, 0) for name in names)
    if not retries:
        return ""
    timeouts = sum(run.by_subject(k.DEPOSIT, k.TIMEOUTS).get(name, 0) for name in names)
    return (
        f"; {retries:,} retries without an Idempotency-Key (after {timeouts:,} timeouts) are the likely cause: "
        "a deposit whose client timed out may still have been applied, and its retry applied it again"
    )


def check_audits(run: Run, money: Money | None, section: dict, verdict: Verdict) -> None:
    """Audits that read a wrong total while deposits raced: the deposits' doing, not the transfers'."""
    wrong, reads = run.total(k.AUDIT, k.WRONG_TOTAL), run.total(k.AUDIT, k.READS)
    suspects = money.suspects if money else None
    if not wrong or suspects is None or audit_owner(run, suspects) != DEPOSITS:
        return
    section["wrong_total_reads"] = wrong
    verdict.anomaly(
        f"deposits: {wrong:,} of {reads:,} audit reads saw a wrong total: deposits under {suspects.deposits} "
        "write without the account lock the audit reads under, and what they lose stays missing from the total",
        operations=wrong,
    )


def server_deposits(run: Run) -> dict | None:
    if run.section("deposits") is None:
        return None
    return {key: run.growth("deposits", key) for key in ("acknowledged", "acknowledged_amount", "lost_updates")}


def compare_with_server(run: Run, section: dict, verdict: Verdict) -> None:
    server = section["server"]
    if server is None:
        verdict.note("the server's /stats has no deposits section: judged from the balances only")
        return
    acknowledged = section["acknowledged_amount"]
    unanswered = section["attempted_amount"] - acknowledged
    # a retry without a key is a deposit of its own to the server, though the client counts it once
    keyless = run.total(k.DEPOSIT, k.KEYLESS_RETRY_AMOUNT)
    said = server.get("acknowledged_amount")
    if said is not None and not acknowledged <= said <= acknowledged + unanswered + keyless:
        retried = f", plus {keyless:,} cents retried without an Idempotency-Key" if keyless else ""
        verdict.disagree(
            f"deposits: the server counts {said:,} cents of acknowledged deposits; the clients saw {acknowledged:,} "
            f"acknowledged and {unanswered:,} without an answer{retried}"
        )
