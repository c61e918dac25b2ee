"""Reading `/metrics` with prometheus_client's own parser, and what each figure must equal in `/stats`."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def pairs(found: dict, stats: dict) -> dict[str, tuple[float, float]]:
    """Each figure the spec names: (what /metrics says, what /stats says)."""
    d, c, t = stats["deposits"], stats["checkout"], stats["transfers"]
    rejected = sum(v for (name, _), v in found.items() if name == "bankapp_checkouts_rejected_total")
    return {
        "acknowledged": (value(found, "bankapp_deposits_acknowledged_total"), d["acknowledged"]),
        "acknowledged cents": (value(found, "bankapp_deposits_acknowledged_cents_total"), d["acknowledged_amount"]),
        "lost cents": (value(found, "bankapp_lost_updates_cents"), d["lost_updates"]),
        "admitted": (value(found, "bankapp_checkouts_admitted_total"), c["admitted"]),
        "rejected": (rejected, c["rejected"]),
        "peak in flight": (value(found, "bankapp_checkout_peak_in_flight"), c["peak_in_flight"]),
        "oversold": (value(found, "bankapp_checkout_oversold_units_total"), c["oversold"]),
        "committed": (value(found, "bankapp_transfers_committed_total"), t["committed"]),
        "deadlocks": (value(found, "bankapp_deadlocks_total"), t["deadlocks"]),
        "transfer lock timeouts": (
            value(found, "bankapp_lock_timeouts_total", operation="transfer"),
            t["lock_timeouts"],
        ),
    } | {
        f"rejected {reason}": (value(found, "bankapp_checkouts_rejected_total", reason=reason), count)
        for reason, count in c["rejections"].items()
    }
