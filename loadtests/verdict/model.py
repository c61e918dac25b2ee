"""What a verdict is made of: the run it judges and the findings it collects.

`Run` holds what the clients counted and what the server showed before and
after; `Verdict` collects anomalies, disagreements, notes and one section per
scenario, and turns into the JSON that `--verdict-json` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import keys as k
from ..tally import by_subject, total

Snapshot = dict[str, Any]  # {"balances", "stats", "races", "audit", "config", "stock"}; any may be None


@dataclass
class Verdict:
    """Findings of one run. Any anomaly fails it; a disagreement is an anomaly too.

    Each anomaly also says how many operations it concerns where it counts
    operations the clients took for successes (deposits lost, units
    oversold, audits that read a wrong total), else 1: the web UI files that
    many failures, so its failure ratio shows how much went wrong.
    """

    settings: dict | None = None
    anomalies: list[str] = field(default_factory=list)
    anomaly_counts: list[int] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: dict[str, dict] = field(default_factory=dict)  # "deposits", "checkout", "transfers"

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def anomaly(self, sentence: str, operations: int = 1) -> None:
        self.anomalies.append(sentence)
        self.anomaly_counts.append(max(1, operations))

    def disagree(self, sentence: str) -> None:
        """Clients and server cannot both be right: that fails the verdict too."""
        self.disagreements.append(sentence)
        self.anomaly("clients and server disagree: " + sentence)

    def note(self, sentence: str) -> None:
        self.notes.append(sentence)

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "anomalies": list(self.anomalies),
            "anomaly_counts": list(self.anomaly_counts),
            "disagreements": list(self.disagreements),
            "notes": list(self.notes),
            "settings": self.settings,
            **self.sections,
        }


@dataclass
class Run:
    """One run as the verdict sees it: the clients' merged counts and two snapshots of the server."""

    counts: dict[str, int]
    before: Snapshot
    after: Snapshot
    unit_amount: int | None = None  # when every deposit was of one amount: lost cents told as deposits

    def total(self, section: str, field: str) -> int:
        return total(self.counts, section, field)

    def by_subject(self, section: str, field: str) -> dict[str, int]:
        return by_subject(self.counts, section, field)

    def operations(self, cents: int, section: str) -> int:
        """About how many deposits (`DEPOSIT`) or transfers (`LEG`) make `cents`, at their mean amount."""
        if section == k.DEPOSIT:
            sent, amount = self.total(k.DEPOSIT, k.SENT), self.total(k.DEPOSIT, k.SENT_AMOUNT)
        else:
            sent, amount = self.total(k.TRANSFER, k.SENT), self.total(k.LEG, k.OUT_SENT)
        return round(abs(cents) * sent / amount) if amount else abs(cents)

    @property
    def ran_deposits(self) -> bool:
        return bool(self.total(k.DEPOSIT, k.SENT) or self.total(k.BATCH, k.SENT))

    @property
    def ran_checkout(self) -> bool:
        return bool(self.total(k.CHECKOUT, k.SENT))

    @property
    def ran_transfers(self) -> bool:
        return bool(self.total(k.TRANSFER, k.SENT))

    @property
    def ran_audits(self) -> bool:
        return bool(self.total(k.AUDIT, k.READS))

    def section(self, name: str, when: str = "after") -> dict | None:
        """A section of `/stats` (`deposits`, `checkout`, `transfers`) before or after the run."""
        stats = (self.after if when == "after" else self.before).get("stats")
        found = stats.get(name) if isinstance(stats, dict) else None
        return found if isinstance(found, dict) else None

    def growth(self, name: str, key: str) -> float | None:
        """A counter's growth over the run; None if the server does not keep it."""
        now = (self.section(name) or {}).get(key)
        if not isinstance(now, int | float):
            return None
        start = (self.section(name, "before") or {}).get(key)
        return now - (start if isinstance(start, int | float) else 0)

    @property
    def settings(self) -> dict | None:
        return settings_of(self.after) or settings_of(self.before)

    def settings_seen(self) -> list[dict]:
        """The settings at the start and at the end: a guard flipped mid-run counts as in force."""
        return [found for found in (settings_of(self.before), settings_of(self.after)) if found]


def settings_of(snapshot: Snapshot) -> dict | None:
    config = snapshot.get("config")
    if isinstance(config, dict):
        return config
    stats = snapshot.get("stats")
    return stats.get("settings") if isinstance(stats, dict) else None


def percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def listing(names: list[str]) -> str:
    return ", ".join(names)


def lost_sentence(lost: int, acknowledged: int, unit: int | None) -> str:
    """Lost cents told as deposits when all were of one amount, and as a share of the acknowledged."""
    share = f"({percent(lost, acknowledged):.1f} %)"
    if unit:
        return f"lost {lost // unit:,} of {acknowledged // unit:,} acknowledged deposits {share}"
    return f"lost {lost:,} of {acknowledged:,} acknowledged cents of deposits {share}"
