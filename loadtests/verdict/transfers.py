"""Transfers: Jepsen's bank check.

Money is conserved (transfers move it, never make or destroy it), no balance
ends below zero, audits never read a wrong total, and no transfer fell
victim to a deadlock. Deposits running meanwhile change the total and can
make an audit read wrong; `money` sorts out which of the two is to blame,
and only the transfers' share is reported here (a gap that either could
have made is reported here once, naming both).
"""

from __future__ import annotations

from typing import Any

from .. import keys as k
from .model import Run, Verdict, listing
from .money import BOTH, TRANSFERS, Money, Suspects, audit_owner


def judge_transfers(run: Run, money: Money | None, verdict: Verdict) -> dict:
    clients = {field: run.total(k.TRANSFER, field) for field in k.TRANSFER_FIELDS}
    audits = {field: run.total(k.AUDIT, field) for field in k.AUDIT_FIELDS}
    now = run.section("transfers")
    config = run.settings or {}
    section: dict[str, Any] = {
        "policy": (now or {}).get("policy", config.get("transfer_policy")),
        "committed": clients[k.COMMITTED],
        "deadlocks": clients[k.DEADLOCKS],
        "total_conserved": None,
        "negative_balances": None,
        "wrong_total_reads": 0,
        "audits": audits[k.READS],
        "audit_wrong_total": audits[k.WRONG_TOTAL],
        "wrong_total_blamed_on": None,
        "clients": clients,
        "server": None,
        "total_change": None,
        "total_error": None,
    }
    if now is None:
        verdict.note("the server's /stats has no transfers section: counts are the clients'")
    else:
        compare_with_server(run, section, verdict)
    audit = run.after.get("audit")
    if isinstance(audit, dict) and "total" in audit and "expected_total" in audit:
        section["audit_total"], section["expected_total"] = audit["total"], audit["expected_total"]
    else:
        verdict.note("the server has no /audit: the total is judged from the balances only")
    suspects = money.suspects if money else Suspects.of(run.settings_seen())
    check_conservation(run, money, section, verdict)
    section["negative_balances"] = negative_balances(run)
    if section["negative_balances"]:
        verdict.anomaly(f"transfers: {section['negative_balances']:,} accounts ended below zero")
    check_audits(run, suspects, section, verdict)
    if section["deadlocks"]:
        verdict.anomaly(f"transfers: {section['deadlocks']:,} transfers were deadlock victims (409), rolled back")
    return section


def compare_with_server(run: Run, section: dict, verdict: Verdict) -> None:
    keys = ("committed", "deadlocks", "lock_timeouts", "retries", "wrong_total_reads")
    server = {key: run.growth("transfers", key) for key in keys}
    section["server"] = server
    for key in ("committed", "deadlocks"):
        if server[key] is not None:
            section[key] = server[key]
    if not section["audits"] and server["wrong_total_reads"] is not None:
        section["audit_wrong_total"] = server["wrong_total_reads"]  # someone else audited: the server counted
    told = section["clients"][k.DEADLOCKS]
    if server["deadlocks"] is not None and server["deadlocks"] < told:
        verdict.disagree(
            f"transfers: the clients were told of {told:,} deadlocks, the server counts {server['deadlocks']:,}"
        )


def check_conservation(run: Run, money: Money | None, section: dict, verdict: Verdict) -> None:
    if money is None:
        verdict.anomaly("transfers: the balances could not be read (GET /accounts): the total was not checked")
        return
    section["total_change"] = money.total_change
    error = section["total_error"] = money.transfers_error()
    ours, shared = money.blamed_on(TRANSFERS), money.blamed_on(BOTH)
    section["total_conserved"] = not (error or ours or shared)
    if error:
        beyond = f", {error:+,} beyond what the deposits explain" if run.ran_deposits else ""
        verdict.anomaly(
            f"transfers: money was not conserved: the bank's total moved by {money.total_change:+,} cents{beyond}",
            operations=run.operations(error, k.LEG),
        )
    elif ours:
        lost, extra = money.lost_and_extra(TRANSFERS)
        verdict.anomaly(
            f"transfers: money was not conserved: {listing([a.id for a in ours])} ended {lost:,} cents short "
            f"and {extra:,} cents over what the transfers on them explain, though the total came out even",
            operations=run.operations(lost + extra, k.LEG),
        )
    if shared:
        lost, extra = money.lost_and_extra(BOTH)
        verdict.anomaly(
            f"{BOTH}: {listing([a.id for a in shared])} ended {lost:,} cents short and {extra:,} cents over what "
            f"the clients did to them, and both wrote them unguarded ({money.suspects.deposits}, "
            f"{money.suspects.transfers}): either race explains it",
            operations=run.operations(lost + extra, k.DEPOSIT),
        )


def check_audits(run: Run, suspects: Suspects, section: dict, verdict: Verdict) -> None:
    """Audits that read a wrong total: the transfers' doing unless deposits raced (then `deposits` says so)."""
    wrong, reads = section["audit_wrong_total"], section["audits"]
    if not wrong:
        return
    blamed = section["wrong_total_blamed_on"] = audit_owner(run, suspects)
    if blamed not in (TRANSFERS, BOTH):
        return
    section["wrong_total_reads"] = wrong
    told = f"{wrong:,} of {max(reads, 1):,} audit reads" if reads else f"{wrong:,} audit reads"
    if blamed == TRANSFERS:
        verdict.anomaly(f"transfers: {told} saw a wrong total", operations=wrong)
    else:
        verdict.anomaly(
            f"{BOTH}: {told} saw a wrong total: deposits under {suspects.deposits} and transfers under "
            f"{suspects.in_flight} both let an audit read between a change and its record",
            operations=wrong,
        )


def negative_balances(run: Run) -> int | None:
    counted = None
    if run.after.get("balances") is not None:
        counted = sum(1 for balance in run.after["balances"].values() if balance < 0)
    audit = run.after.get("audit")
    if isinstance(audit, dict):
        named = audit.get("negative_accounts")
        named = len(named) if isinstance(named, list | dict) else named
        if isinstance(named, int):
            counted = max(counted or 0, named)
    return counted
