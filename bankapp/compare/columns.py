"""The columns of the compare table, defined once for the terminal and the report.

`bankapp compare` prints the table (`console.print_table`) and writes it to
report.md and report.html (`report`); all three read `COLUMNS`, so a column
added here shows up everywhere, formatted the same way. The terminal uses
the short header, where width is scarce.

Throughput comes first as what got done (`completed/s`) and what was
refused (`rejected/s`); `requests/s` counts both, and more (audits), so it
never reads alone as "faster".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    header: str  # in report.md and report.html
    short: str  # in the terminal
    cell: Callable[[dict], str]
    text: bool = False  # text reads from the left; numbers line up on the right


def field(name: str) -> Callable[[dict], str]:
    return lambda row: row[name]


def rounded(name: str) -> Callable[[dict], str]:
    return lambda row: f"{row[name]:,.0f}"


def count(name: str) -> Callable[[dict], str]:
    return lambda row: f"{row[name]:,}"


def peak(row: dict) -> str:
    """Peak in flight against the admission capacity; only checkout has either."""
    return f"{row['peak_in_flight']} / {row['capacity'] or '-'}" if row["scenario"] == "checkout" else ""


def verdict(row: dict) -> str:
    return "ok" if row["ok"] else "anomaly"


VERDICT = Column("verdict", "verdict", verdict, text=True)

COLUMNS = [
    Column("scenario", "scenario", field("scenario"), text=True),
    Column("guard", "guard", field("guard"), text=True),
    Column("completed/s", "done/s", rounded("completed_per_s")),
    Column("rejected/s", "rej/s", rounded("rejected_per_s")),
    Column("requests/s", "req/s", rounded("rps")),
    Column("p50 ms", "p50", rounded("p50_ms")),
    Column("p95 ms", "p95", rounded("p95_ms")),
    Column("p99 ms", "p99", rounded("p99_ms")),
    Column("lost updates", "lost", count("lost_updates")),
    Column("oversold", "oversold", count("oversold")),
    Column("peak / capacity", "peak/cap", peak),
    Column("deadlocks", "deadlocks", count("deadlocks")),
    VERDICT,
]
