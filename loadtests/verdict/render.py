"""The verdict block a person reads, from the verdict's JSON (so a saved `verdict.json` renders the same)."""

from __future__ import annotations

import textwrap

from .model import lost_sentence

SHOWN_SETTINGS = ("deposit_guard", "deposit_permits", "checkout_guard", "capacity", "transfer_policy", "race_window_ms")
INDENT = " " * 11


def render(verdict: dict) -> str:
    """The verdict block the master prints at the end of a run."""
    lines = ["", "=" * 30 + " bankapp verdict " + "=" * 30]
    settings = verdict.get("settings") or {}
    if settings:
        lines.append("settings   " + "  ".join(f"{k}={settings[k]}" for k in SHOWN_SETTINGS if k in settings))
    if "deposits" in verdict:
        lines += deposit_lines(verdict["deposits"])
    if "checkout" in verdict:
        lines += checkout_lines(verdict["checkout"])
    if "transfers" in verdict:
        lines += transfer_lines(verdict["transfers"])
    if "races" in verdict:
        lines += race_lines(verdict["races"])
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
    lines.append(f"{INDENT}balances grew {section['balance_change']:,} cents")
    if section["lost_updates"]:
        lines.append(
            INDENT + lost_sentence(section["lost_updates"], section["acknowledged_amount"], section["unit_amount"])
        )
    else:
        lines.append(f"{INDENT}every acknowledged deposit is in the balance: no lost update")
    if section["applied_twice"]:
        lines.append(f"{INDENT}{section['applied_twice']:,} cents more than every attempt: applied twice")
    if section["retries"] or section["timeouts"]:
        keys = (
            f"{section['keyless_retries']:,} without an Idempotency-Key" if section["keyless_retries"] else "all keyed"
        )
        lines.append(
            f"{INDENT}retries {section['retries']:,} ({keys}) after {section['timeouts']:,} timeouts, "
            f"{section['replayed']:,} answered by replay"
        )
    server = section["server"]
    if server and server.get("lost_updates") is not None:
        by_whom = " (lost transfer legs included)" if section.get("server_count_includes_transfers") else ""
        lines.append(f"{INDENT}the server's own count of lost updates: {server['lost_updates']:,} cents{by_whom}")
    return lines


def checkout_lines(section: dict) -> list[str]:
    clients = section["clients"]
    peak = "unknown" if section["peak_in_flight"] is None else f"{section['peak_in_flight']:,}"
    capacity = "unknown" if section["capacity"] is None else f"{section['capacity']:,}"
    return [
        f"checkout   guard {section['guard']}: peak in flight {peak} against capacity {capacity}",
        f"{INDENT}admitted {section['admitted']:,}, rejected by admission {section['rejected']:,}, "
        f"oversold {section['oversold']:,} (clients: {clients['ok']:,} orders, "
        f"{clients['out_of_stock']:,} out of stock, {clients['rejected']:,} rejected)",
    ]


def transfer_lines(section: dict) -> list[str]:
    conserved = {True: "conserved", False: "NOT conserved", None: "unknown"}[section["total_conserved"]]
    negative = "unknown" if section["negative_balances"] is None else f"{section['negative_balances']:,}"
    wrong = section.get("audit_wrong_total", section["wrong_total_reads"])
    blamed = section.get("wrong_total_blamed_on")
    by_whom = f" (blamed on {blamed})" if wrong and blamed and blamed != "transfers" else ""
    return [
        f"transfers  policy {section['policy']}: committed {section['committed']:,}, deadlocks "
        f"{section['deadlocks']:,}",
        f"{INDENT}total {conserved}, accounts below zero {negative}, audits {section['audits']:,} of which "
        f"{wrong:,} saw a wrong total{by_whom}",
    ]


def race_lines(section: dict) -> list[str]:
    if not section["erasures"]:
        return ["races      no write erased another (the server's /debug/races)"]
    lines = [
        f"races      the server named {section['erasures']:,} writes that erased others, "
        f"{section['lost_updates']:,} cents in all (/debug/races); for example:"
    ]
    if section["example"]:
        lines += textwrap.wrap(section["example"], 100, initial_indent=INDENT, subsequent_indent=INDENT)
    return lines
