"""The verdict: what the clients saw, checked against what the server holds.

The checks are those of Jepsen's counter and bank checkers:

- deposits (counter): per account, the final balance change must lie
  between the sum of acknowledged deposits (they certainly happened) and the
  sum of attempted ones (those without a definite answer may have happened
  too). Below: acknowledged deposits were lost. Above: something was applied
  twice. A deposit retried after a timeout is one attempt, so a retry
  without an `Idempotency-Key` that the server applied on top of the first
  try shows up above the bound (the verdict then names the retries as the
  likely cause); with a key, the retry replays and the bound holds.
  Acknowledged transfer legs count as known changes, so deposits and
  transfers can run together.
- checkout: peak in flight against capacity, admitted, rejected, oversold.
- transfers (bank): the total is conserved, no balance is negative, audits
  never read a wrong total, no transfer fell victim to a deadlock.

Where the clients' counts and the server's own counters (`/stats`) cannot
both be right, the verdict says so plainly. A section of `/stats` the server
does not have yet is noted, and the check falls back to what the clients saw.

Pure functions of plain data, so it can be tested on hand-made numbers:
`judge(counts, before, after)` returns the JSON of the verdict, `render()`
the block a person reads.
"""

from __future__ import annotations

from typing import Any

from .tally import by_subject, total

Snapshot = dict[str, Any]  # {"balances", "stats", "audit", "config", "stock"}; any may be None


def judge(counts: dict[str, int], before: Snapshot, after: Snapshot, unit_amount: int | None = None) -> dict:
    """The verdict of one run as JSON-ready data.

    `counts` are the clients' merged counters (see `tally`); `before` and
    `after` what the server showed at the start and at the end;
    `unit_amount`, when every deposit was of the same amount, lets lost
    cents be told as a number of deposits.
    """
    verdict: dict[str, Any] = {
        "ok": True,
        "anomalies": [],
        "disagreements": [],
        "notes": [],
        "settings": settings_of(after) or settings_of(before),
    }
    if total(counts, "deposit", "sent") or total(counts, "batch", "sent"):
        verdict["deposits"] = judge_deposits(counts, before, after, unit_amount, verdict)
    if total(counts, "checkout", "sent"):
        verdict["checkout"] = judge_checkout(counts, before, after, verdict)
    if total(counts, "transfer", "sent") or total(counts, "audit", "reads"):
        verdict["transfers"] = judge_transfers(counts, before, after, verdict)
    if not any(key in verdict for key in ("deposits", "checkout", "transfers")):
        verdict["notes"].append("no scenario sent a request: nothing to judge")
    verdict["ok"] = not verdict["anomalies"]
    return verdict


def disagree(verdict: dict, sentence: str) -> None:
    """Clients and server cannot both be right: that fails the verdict too."""
    verdict["disagreements"].append(sentence)
    verdict["anomalies"].append("clients and server disagree: " + sentence)


# --- deposits ------------------------------------------------------------------


def judge_deposits(counts: dict, before: Snapshot, after: Snapshot, unit: int | None, verdict: dict) -> dict:
    sent = by_subject(counts, "deposit", "sent_amount")
    ok = by_subject(counts, "deposit", "ok_amount")
    failed = by_subject(counts, "deposit", "failed_amount")
    acknowledged_amount = sum(ok.values())
    attempted_amount = sum(sent.values()) - sum(failed.values())
    section: dict[str, Any] = {
        "acknowledged": total(counts, "deposit", "ok"),
        "attempted": total(counts, "deposit", "sent") - total(counts, "deposit", "failed"),
        "acknowledged_amount": acknowledged_amount,
        "attempted_amount": attempted_amount,
        "balance_change": None,
        "lost_updates": None,
        "lost_percent": None,
        "lost_deposits": None,
        "applied_twice": None,
        "unit_amount": unit,
        "self_deadlocks": total(counts, "batch", "self_deadlock"),
        **{field: total(counts, "deposit", field) for field in RETRY_FIELDS},
        "server": server_deposits(before, after),
        "per_account": {},
    }
    old, new = before.get("balances"), after.get("balances")
    if old is None or new is None:
        verdict["anomalies"].append("deposits: the balances could not be read (GET /accounts), so nothing was checked")
        return section
    legs = {field: by_subject(counts, "leg", field) for field in LEG_FIELDS}
    lost_total = extra_total = change_total = 0
    doubled = []
    for account in sorted(set(new) | set(sent)):
        if account not in new or account not in old:
            verdict["anomalies"].append(f"deposits: {account} got deposits but the server does not list it")
            continue
        change = new[account] - old[account]
        known = ok.get(account, 0) + legs["in_ok"].get(account, 0) - legs["out_ok"].get(account, 0)
        maybe_up = open_amount(sent, ok, failed, account) + open_amount(
            legs["in_sent"], legs["in_ok"], legs["in_failed"], account
        )
        maybe_down = open_amount(legs["out_sent"], legs["out_ok"], legs["out_failed"], account)
        low, high = known - maybe_down, known + maybe_up
        lost, extra = max(0, low - change), max(0, change - high)
        change_total += change
        lost_total += lost
        extra_total += extra
        if extra:
            doubled.append(account)
        if account in sent or lost or extra:
            section["per_account"][account] = {
                "acknowledged_amount": ok.get(account, 0),
                "attempted_amount": sent.get(account, 0) - failed.get(account, 0),
                "balance_change": change,
                "lowest_expected": low,
                "highest_expected": high,
                "lost_updates": lost,
                "applied_twice": extra,
            }
    section["balance_change"] = change_total
    section["lost_updates"] = lost_total
    section["applied_twice"] = extra_total
    section["lost_percent"] = percent(lost_total, acknowledged_amount)
    if unit:
        section["lost_deposits"] = lost_total // unit
    if lost_total:
        verdict["anomalies"].append("deposits: " + lost_sentence(section, unit))
    if extra_total:
        verdict["anomalies"].append(
            f"deposits: {', '.join(doubled)} grew by {extra_total:,} cents more than every attempted deposit "
            "could explain: something was applied twice" + retry_cause(counts, doubled)
        )
    if section["self_deadlocks"]:
        verdict["anomalies"].append(
            f"deposits: {section['self_deadlocks']:,} batch deposits self-deadlocked (503): the thread already "
            "held the account's non-reentrant guard"
        )
    compare_with_server(section, counts, verdict)
    return section


#: What a retrying client counts besides sent and acknowledged (see `users.RetryingDepositUser`).
RETRY_FIELDS = ("retries", "keyless_retries", "timeouts", "replayed")


def retry_cause(counts: dict, doubled: list[str]) -> str:
    """The likely cause of money applied twice, when clients retried without an Idempotency-Key."""
    keyless = by_subject(counts, "deposit", "keyless_retries")
    retries = sum(keyless.get(account, 0) for account in doubled)
    if not retries:
        return ""
    timeouts = sum(by_subject(counts, "deposit", "timeouts").get(account, 0) for account in doubled)
    return (
        f"; {retries:,} retries without an Idempotency-Key (after {timeouts:,} timeouts) are the likely cause: "
        "a deposit whose client timed out may still have been applied, and its retry applied it again"
    )


LEG_FIELDS = ("in_sent", "in_ok", "in_failed", "out_sent", "out_ok", "out_failed")


def open_amount(sent: dict, ok: dict, failed: dict, key: str) -> int:
    """Sent without a definite answer: it may or may not have been applied."""
    return max(0, sent.get(key, 0) - ok.get(key, 0) - failed.get(key, 0))


def lost_sentence(section: dict, unit: int | None) -> str:
    lost, acknowledged = section["lost_updates"], section["acknowledged_amount"]
    share = f"({section['lost_percent']:.1f} %)"
    if unit:
        return f"lost {lost // unit:,} of {acknowledged // unit:,} acknowledged deposits {share}"
    return f"lost {lost:,} of {acknowledged:,} acknowledged cents of deposits {share}"


def server_deposits(before: Snapshot, after: Snapshot) -> dict | None:
    now = section_of(after, "deposits")
    if now is None:
        return None
    then = section_of(before, "deposits") or {}
    return {key: delta(now, then, key) for key in ("acknowledged", "acknowledged_amount", "lost_updates")}


def compare_with_server(section: dict, counts: dict, verdict: dict) -> None:
    server = section["server"]
    if server is None:
        verdict["notes"].append("the server's /stats has no deposits section: judged from the balances only")
        return
    acknowledged = section["acknowledged_amount"]
    unanswered = section["attempted_amount"] - acknowledged
    # a retry without a key is a deposit of its own to the server, though the client counts it once
    keyless = total(counts, "deposit", "keyless_retry_amount")
    said = server.get("acknowledged_amount")
    if said is not None and not acknowledged <= said <= acknowledged + unanswered + keyless:
        retried = f", plus {keyless:,} cents retried without an Idempotency-Key" if keyless else ""
        disagree(
            verdict,
            f"deposits: the server counts {said:,} cents of acknowledged deposits; the clients saw {acknowledged:,} "
            f"acknowledged and {unanswered:,} without an answer{retried}",
        )


# --- checkout --------------------------------------------------------------------


def judge_checkout(counts: dict, before: Snapshot, after: Snapshot, verdict: dict) -> dict:
    clients = {field: total(counts, "checkout", field) for field in CHECKOUT_FIELDS}
    unanswered = max(0, clients["sent"] - sum(clients[f] for f in ("ok", "out_of_stock", "rejected", "failed")))
    now, then = section_of(after, "checkout"), section_of(before, "checkout") or {}
    config = settings_of(after) or {}
    section: dict[str, Any] = {
        "guard": config.get("checkout_guard"),
        "capacity": (now or {}).get("capacity", config.get("capacity")),
        "peak_in_flight": None,
        "admitted": clients["ok"] + clients["out_of_stock"],
        "rejected": clients["rejected"],
        "oversold": client_oversold(counts, before),
        "clients": {**clients, "unanswered": unanswered},
        "server": None,
    }
    if now is None:
        verdict["notes"].append(
            "the server's /stats has no checkout section: peak in flight unknown, counts are the clients'"
        )
    else:
        server = {key: delta(now, then, key) for key in ("admitted", "rejected", "oversold", "completed")}
        server["peak_in_flight"] = now.get("peak_in_flight")
        section["server"] = server
        section["peak_in_flight"] = server["peak_in_flight"]
        for key in ("admitted", "rejected"):
            if server[key] is not None:
                section[key] = server[key]
        if server["oversold"] is not None:
            section["oversold"] = max(section["oversold"], server["oversold"])
        said = server["rejected"]
        if said is not None and not clients["rejected"] <= said <= clients["rejected"] + unanswered:
            disagree(
                verdict,
                f"checkout: the server counts {said:,} rejections; the clients saw {clients['rejected']:,} "
                f"and {unanswered:,} without an answer",
            )
        if server["oversold"] == 0 and section["oversold"]:
            disagree(
                verdict,
                f"checkout: the clients were sold {section['oversold']:,} units more than the stock, "
                "yet the server counts none oversold",
            )
    peak, capacity = section["peak_in_flight"], section["capacity"]
    if peak is not None and capacity is not None and peak > capacity:
        verdict["anomalies"].append(
            f"checkout: {peak:,} checkouts were in flight at once, above the capacity of {capacity:,}"
        )
    if section["oversold"]:
        verdict["anomalies"].append(f"checkout: oversold {section['oversold']:,} units")
    return section


CHECKOUT_FIELDS = ("sent", "ok", "out_of_stock", "rejected", "failed", "negative_remaining")


def client_oversold(counts: dict, before: Snapshot) -> int:
    """Units the clients were sold beyond the stock at the start, as far as they can tell."""
    sold = by_subject(counts, "checkout", "ok_quantity")
    stock = before.get("stock") or {}
    beyond = sum(max(0, sold.get(sku, 0) - stock[sku]) for sku in sold if isinstance(stock.get(sku), int))
    return max(beyond, total(counts, "checkout", "negative_remaining"))


# --- transfers ----------------------------------------------------------------------


def judge_transfers(counts: dict, before: Snapshot, after: Snapshot, verdict: dict) -> dict:
    clients = {field: total(counts, "transfer", field) for field in TRANSFER_FIELDS}
    audits = {field: total(counts, "audit", field) for field in ("reads", "wrong_total", "negative")}
    now, then = section_of(after, "transfers"), section_of(before, "transfers") or {}
    config = settings_of(after) or {}
    section: dict[str, Any] = {
        "policy": (now or {}).get("policy", config.get("transfer_policy")),
        "committed": clients["committed"],
        "deadlocks": clients["deadlocks"],
        "total_conserved": None,
        "negative_balances": None,
        "wrong_total_reads": audits["wrong_total"],
        "audits": audits["reads"],
        "clients": clients,
        "server": None,
        "total_change": None,
    }
    if now is None:
        verdict["notes"].append("the server's /stats has no transfers section: counts are the clients'")
    else:
        keys = ("committed", "deadlocks", "lock_timeouts", "retries", "wrong_total_reads")
        server = {key: delta(now, then, key) for key in keys}
        section["server"] = server
        for key in ("committed", "deadlocks"):
            if server[key] is not None:
                section[key] = server[key]
        if not audits["reads"] and server["wrong_total_reads"] is not None:
            section["wrong_total_reads"] = server["wrong_total_reads"]
        if server["deadlocks"] is not None and server["deadlocks"] < clients["deadlocks"]:
            disagree(
                verdict,
                f"transfers: the clients were told of {clients['deadlocks']:,} deadlocks, "
                f"the server counts {server['deadlocks']:,}",
            )
    conserved_by_balances = balances_conserved(counts, before, after, section)
    audit = after.get("audit")
    conserved_by_audit = None
    if isinstance(audit, dict) and "total" in audit and "expected_total" in audit:
        conserved_by_audit = audit["total"] == audit["expected_total"]
        section["audit_total"], section["expected_total"] = audit["total"], audit["expected_total"]
    else:
        verdict["notes"].append("the server has no /audit: the total is judged from the balances only")
    known = [value for value in (conserved_by_balances, conserved_by_audit) if value is not None]
    section["total_conserved"] = all(known) if known else None
    if (
        conserved_by_balances is not None
        and conserved_by_audit is not None
        and conserved_by_balances != (conserved_by_audit)
    ):
        disagree(
            verdict,
            "transfers: the balances say the total was "
            f"{'conserved' if conserved_by_balances else 'not conserved'}, the server's /audit says "
            f"{'conserved' if conserved_by_audit else 'not conserved'}",
        )
    section["negative_balances"] = negative_balances(after)
    if section["total_conserved"] is None:
        verdict["anomalies"].append("transfers: neither the balances nor /audit could be read: nothing was checked")
    elif not section["total_conserved"]:
        change = section["total_change"]
        moved = f" by {change:+,} cents" if change is not None else ""
        verdict["anomalies"].append(f"transfers: money was not conserved: the bank's total moved{moved}")
    if section["negative_balances"]:
        verdict["anomalies"].append(f"transfers: {section['negative_balances']:,} accounts ended below zero")
    if section["wrong_total_reads"]:
        verdict["anomalies"].append(
            f"transfers: {section['wrong_total_reads']:,} of {max(audits['reads'], 1):,} audit reads saw a wrong total"
            if audits["reads"]
            else f"transfers: {section['wrong_total_reads']:,} audit reads saw a wrong total"
        )
    if section["deadlocks"]:
        verdict["anomalies"].append(
            f"transfers: {section['deadlocks']:,} transfers were deadlock victims (409), rolled back"
        )
    return section


TRANSFER_FIELDS = ("sent", "committed", "insufficient", "deadlocks", "lock_timeouts", "failed")


def balances_conserved(counts: dict, before: Snapshot, after: Snapshot, section: dict) -> bool | None:
    """Did the total move only as far as this run's deposits can explain?"""
    old, new = before.get("balances"), after.get("balances")
    if old is None or new is None:
        return None
    change = sum(new.values()) - sum(old.values())
    section["total_change"] = change
    low = total(counts, "deposit", "ok_amount")
    high = total(counts, "deposit", "sent_amount") - total(counts, "deposit", "failed_amount")
    return low <= change <= high


def negative_balances(after: Snapshot) -> int | None:
    counted = None
    if after.get("balances") is not None:
        counted = sum(1 for balance in after["balances"].values() if balance < 0)
    audit = after.get("audit")
    if isinstance(audit, dict):
        named = audit.get("negative_accounts")
        named = len(named) if isinstance(named, list | dict) else named
        if isinstance(named, int):
            counted = max(counted or 0, named)
    return counted


# --- helpers ------------------------------------------------------------------------


def section_of(snapshot: Snapshot, name: str) -> dict | None:
    stats = snapshot.get("stats")
    section = stats.get(name) if isinstance(stats, dict) else None
    return section if isinstance(section, dict) else None


def settings_of(snapshot: Snapshot) -> dict | None:
    config = snapshot.get("config")
    if isinstance(config, dict):
        return config
    stats = snapshot.get("stats")
    return stats.get("settings") if isinstance(stats, dict) else None


def delta(now: dict, then: dict, key: str) -> int | None:
    """A counter's growth over the run; None if the server does not keep it."""
    value = now.get(key)
    if not isinstance(value, int | float):
        return None
    start = then.get(key)
    return value - (start if isinstance(start, int | float) else 0)


def percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


# --- the block a person reads ----------------------------------------------------


def render(verdict: dict) -> str:
    """The verdict block the master prints at the end of a run."""
    lines = ["", "=" * 30 + " bankapp verdict " + "=" * 30]
    settings = verdict.get("settings") or {}
    if settings:
        shown = ("deposit_guard", "deposit_permits", "checkout_guard", "capacity", "transfer_policy", "race_window_ms")
        lines.append("settings   " + "  ".join(f"{k}={settings[k]}" for k in shown if k in settings))
    if "deposits" in verdict:
        lines += deposit_lines(verdict["deposits"])
    if "checkout" in verdict:
        lines += checkout_lines(verdict["checkout"])
    if "transfers" in verdict:
        lines += transfer_lines(verdict["transfers"])
    for sentence in verdict["anomalies"]:
        lines.append(f"ANOMALY    {sentence}")
    for sentence in verdict["notes"]:
        lines.append(f"note       {sentence}")
    failed = len(verdict["anomalies"])
    lines.append(f"verdict    {'OK: every check passed' if verdict['ok'] else f'FAILED: {failed} check(s) failed'}")
    lines.append("=" * 77)
    return "\n".join(lines)


def deposit_lines(section: dict) -> list[str]:
    lines = [
        f"deposits   acknowledged {section['acknowledged']:,} ({section['acknowledged_amount']:,} cents), "
        f"attempted {section['attempted']:,} ({section['attempted_amount']:,} cents)"
    ]
    if section["balance_change"] is None:
        return lines
    lines.append(f"           balances grew {section['balance_change']:,} cents")
    if section["lost_updates"]:
        lines.append("           " + lost_sentence(section, section["unit_amount"]))
    else:
        lines.append("           every acknowledged deposit is in the balance: no lost update")
    if section["applied_twice"]:
        lines.append(f"           {section['applied_twice']:,} cents more than every attempt: applied twice")
    if section["retries"] or section["timeouts"]:
        keys = (
            f"{section['keyless_retries']:,} without an Idempotency-Key" if section["keyless_retries"] else "all keyed"
        )
        lines.append(
            f"           retries {section['retries']:,} ({keys}) after {section['timeouts']:,} timeouts, "
            f"{section['replayed']:,} answered by replay"
        )
    server = section["server"]
    if server and server.get("lost_updates") is not None:
        lines.append(f"           the server's own count of lost updates: {server['lost_updates']:,} cents")
    return lines


def checkout_lines(section: dict) -> list[str]:
    clients = section["clients"]
    peak = "unknown" if section["peak_in_flight"] is None else f"{section['peak_in_flight']:,}"
    capacity = "unknown" if section["capacity"] is None else f"{section['capacity']:,}"
    return [
        f"checkout   guard {section['guard']}: peak in flight {peak} against capacity {capacity}",
        f"           admitted {section['admitted']:,}, rejected by admission {section['rejected']:,}, "
        f"oversold {section['oversold']:,} (clients: {clients['ok']:,} orders, "
        f"{clients['out_of_stock']:,} out of stock, {clients['rejected']:,} rejected)",
    ]


def transfer_lines(section: dict) -> list[str]:
    conserved = {True: "conserved", False: "NOT conserved", None: "unknown"}[section["total_conserved"]]
    negative = "unknown" if section["negative_balances"] is None else f"{section['negative_balances']:,}"
    return [
        f"transfers  policy {section['policy']}: committed {section['committed']:,}, deadlocks "
        f"{section['deadlocks']:,}",
        f"           total {conserved}, accounts below zero {negative}, audits {section['audits']:,} of which "
        f"{section['wrong_total_reads']:,} saw a wrong total",
    ]
