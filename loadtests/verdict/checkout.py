"""Checkout: peak in flight against capacity, admitted, rejected, oversold.

The shop shares nothing with the bank's balances, so nothing the other
scenarios do can move these figures: a checkout anomaly is always the
checkout guard's.
"""

from __future__ import annotations

from typing import Any

from .. import keys as k
from .model import Run, Verdict


def judge_checkout(run: Run, verdict: Verdict) -> dict:
    clients = {field: run.total(k.CHECKOUT, field) for field in k.CHECKOUT_FIELDS}
    answered = (k.OK, k.OUT_OF_STOCK, k.REJECTED, k.FAILED)
    unanswered = max(0, clients[k.SENT] - sum(clients[field] for field in answered))
    now = run.section("checkout")
    config = run.settings or {}
    section: dict[str, Any] = {
        "guard": config.get("checkout_guard"),
        "capacity": (now or {}).get("capacity", config.get("capacity")),
        "peak_in_flight": None,
        "admitted": clients[k.OK] + clients[k.OUT_OF_STOCK],
        "rejected": clients[k.REJECTED],
        "oversold": client_oversold(run),
        "clients": {**clients, "unanswered": unanswered},
        "server": None,
    }
    if now is None:
        verdict.note("the server's /stats has no checkout section: peak in flight unknown, counts are the clients'")
    else:
        compare_with_server(run, now, section, unanswered, verdict)
    peak, capacity = section["peak_in_flight"], section["capacity"]
    if peak is not None and capacity is not None and peak > capacity:
        verdict.anomaly(f"checkout: {peak:,} checkouts were in flight at once, above the capacity of {capacity:,}")
    if section["oversold"]:
        verdict.anomaly(f"checkout: oversold {section['oversold']:,} units", operations=section["oversold"])
    return section


def compare_with_server(run: Run, now: dict, section: dict, unanswered: int, verdict: Verdict) -> None:
    """The server's counters win where it keeps them; where they cannot match the clients', say so."""
    server = {key: run.growth("checkout", key) for key in ("admitted", "rejected", "oversold", "completed")}
    server["peak_in_flight"] = now.get("peak_in_flight")
    section["server"] = server
    section["peak_in_flight"] = server["peak_in_flight"]
    for key in ("admitted", "rejected"):
        if server[key] is not None:
            section[key] = server[key]
    if server["oversold"] is not None:
        section["oversold"] = max(section["oversold"], server["oversold"])
    rejected = section["clients"][k.REJECTED]
    said = server["rejected"]
    if said is not None and not rejected <= said <= rejected + unanswered:
        verdict.disagree(
            f"checkout: the server counts {said:,} rejections; the clients saw {rejected:,} "
            f"and {unanswered:,} without an answer"
        )
    if server["oversold"] == 0 and section["oversold"]:
        verdict.disagree(
            f"checkout: the clients were sold {section['oversold']:,} units more than the stock, "
            "yet the server counts none oversold"
        )


def client_oversold(run: Run) -> int:
    """Units the clients were sold beyond the stock at the start, as far as they can tell."""
    sold = run.by_subject(k.CHECKOUT, k.OK_QUANTITY)
    stock = run.before.get("stock") or {}
    beyond = sum(max(0, sold.get(sku, 0) - stock[sku]) for sku in sold if isinstance(stock.get(sku), int))
    return max(beyond, run.total(k.CHECKOUT, k.NEGATIVE_REMAINING))
