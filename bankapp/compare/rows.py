"""One result row per configuration: Locust's numbers and the server's truth, merged.

Locust says how fast and how many (requests, rate, percentiles) and what
its verdict was; the server's `/stats` (and `/audit` for transfers) says
what really happened to the money and the stock. A row is a plain dict, the
shape of one entry of `results.json`.

`rps` counts every answer, a refusal as much as a completed operation: a
checkout turned away in a millisecond makes `rps` climb while nothing gets
done. So each row also has `completed_per_s` (the scenario's operations
that went through: deposits acknowledged, checkouts completed, transfers
committed) and `rejected_per_s` (those refused), both from the server's
counters, over the same seconds as `rps`.
"""

from __future__ import annotations

from collections import Counter

from ..lab.reservoir import percentile
from .explain import explain
from .matrix import BASE_SETTINGS, MatrixRow

#: The columns of results.csv, in order (results.json has every key of a row).
ROW_FIELDS = [
    "scenario",
    "guard",
    "settings",
    "requests",
    "rps",
    "completed_per_s",
    "rejected_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "lost_updates",
    "oversold",
    "peak_in_flight",
    "capacity",
    "rejected",
    "deadlocks",
    "ok",
    "anomalies",
    "sentence",
]


def summarize(entries: list[dict]) -> dict:
    """Requests, rate and percentiles over every entry of Locust's final JSON.

    Locust keeps a histogram of response times (rounded milliseconds ->
    count) per entry; merging them gives exact percentiles of the whole run.
    """
    histogram: Counter[float] = Counter()
    for entry in entries:
        for millis, count in entry["response_times"].items():
            histogram[float(millis)] += count
    requests_made = sum(entry["num_requests"] for entry in entries)
    began = min((entry["start_time"] for entry in entries), default=0)
    ended = max((entry["last_request_timestamp"] or 0 for entry in entries), default=0)
    return {
        "requests": requests_made,
        "elapsed_s": max(ended - began, 0.0),
        "rps": requests_made / (ended - began) if ended > began else 0.0,
        **{f"p{rank}_ms": percentile(histogram, rank) or 0.0 for rank in (50, 95, 99)},
    }


def outcomes(scenario: str, server_stats: dict) -> tuple[int, int]:
    """The scenario's operations that went through, and those refused, by the server's counters.

    deposit: acknowledged / refused (lock timeouts, self-deadlocks);
    checkout: completed / not admitted; transfer: committed / deadlock
    victims and lock timeouts. Audits, the transfers' companions, are neither.
    """
    if scenario == "deposit":
        deposits = server_stats.get("deposits", {})
        return deposits.get("acknowledged", 0), sum(deposits.get("rejected", {}).values())
    if scenario == "checkout":
        checkout = server_stats.get("checkout", {})
        return checkout.get("completed", 0), checkout.get("rejected", 0)
    transfers = server_stats.get("transfers", {})
    return transfers.get("committed", 0), transfers.get("deadlock_victims", 0) + transfers.get("lock_timeouts", 0)


def make_row(matrix_row: MatrixRow, verdict: dict, stats: dict, duration_s: float, server_stats: dict) -> dict:
    """Server truth and client view, merged into one row; `stats` is `summarize`'s."""
    scenario = matrix_row.scenario
    deposits = server_stats.get("deposits", {}) if scenario == "deposit" else {}
    checkout = server_stats.get("checkout", {}) if scenario == "checkout" else {}
    transfers = server_stats.get("transfers", {}) if scenario == "transfer" else {}
    completed, rejected = outcomes(scenario, server_stats)
    seconds = stats.get("elapsed_s") or duration_s  # the seconds `rps` is over
    row = {
        "scenario": scenario,
        "guard": matrix_row.guard,
        "settings": {**BASE_SETTINGS, **matrix_row.settings},
        **stats,
        "completed_per_s": completed / seconds if seconds else 0.0,
        "rejected_per_s": rejected / seconds if seconds else 0.0,
        "lost_updates": deposits.get("lost_updates", 0),
        "acknowledged": deposits.get("acknowledged", 0),
        "oversold": checkout.get("oversold", 0),
        "peak_in_flight": checkout.get("peak_in_flight", 0),
        "capacity": checkout.get("capacity"),
        "gateway_capacity": server_stats.get("settings", {}).get("gateway_capacity"),
        "rejected": rejected,
        "completed": completed,
        "duration_s": duration_s,
        "deadlocks": transfers.get("deadlocks", 0),
        "retries": transfers.get("retries", 0),
        "wrong_total_reads": transfers.get("wrong_total_reads", 0),
        "total_conserved": None,
        "ok": bool(verdict.get("ok")),
        "anomalies": list(verdict.get("anomalies", [])),
        # who erased whom, as the server named it (the verdict quotes /debug/races)
        "erasures": (verdict.get("races") or {}).get("erasures", 0),
        "race_example": (verdict.get("races") or {}).get("example"),
    }
    if scenario == "transfer":
        audit = server_stats.get("audit") or {}
        row["total_conserved"] = audit.get("consistent")
        row["total_error"] = (audit.get("total") or 0) - (audit.get("expected_total") or 0)
    row["sentence"] = explain(row)
    return row
