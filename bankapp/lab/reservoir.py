"""A bounded sample of durations and its percentiles.

A server that kept every latency it ever measured would grow without end;
`Reservoir` keeps the most recent `size` samples in a `deque(maxlen=size)`,
which drops the oldest as a new one arrives, so memory is fixed and the
percentiles describe recent traffic. Not thread-safe on its own: the owner
calls it under the lock that guards its other counters.

Percentiles are by nearest rank (`percentile`): the smallest sample with at
least that share of the samples at or below it, always a value that was
really measured, never an interpolation between two. The same function
reads a histogram (value -> how many times), such as Locust's response
times, so a percentile means one thing wherever bankapp reports one.

Example::

    waits = Reservoir(size=1000)
    waits.add(12.5)
    waits.summary()  # {"p50": 12.5, "p95": 12.5, "p99": 12.5, "max": 12.5}
    percentile({10: 90, 500: 10}, 95)  # 500: 90 of 100 samples are at or below 10, 100 at or below 500
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping


def percentile(counts: Mapping[float, int], percent: float) -> float | None:
    """Nearest rank over a histogram {value: how many}: the smallest value with at
    least `percent` % of the samples at or below it; None when there are none."""
    return nearest_rank(counts, percent) if sum(counts.values()) else None


def nearest_rank(counts: Mapping[float, int], percent: float) -> float:
    """`percentile` of a histogram that holds at least one sample."""
    wanted, seen = percent / 100 * sum(counts.values()), 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= wanted:
            break
    return value  # the first value at which the count reached `wanted`


class Reservoir:
    def __init__(self, size: int = 10_000):
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self._samples.append(value)

    def clear(self) -> None:
        self._samples.clear()

    def __len__(self) -> int:
        return len(self._samples)

    def summary(self) -> dict[str, float | None]:
        """p50, p95, p99 (nearest rank) and max, in the samples' unit; None when empty."""
        if not self._samples:
            return {"p50": None, "p95": None, "p99": None, "max": None}
        counts = Counter(self._samples)
        ranks = {f"p{percent}": round(nearest_rank(counts, percent), 3) for percent in (50, 95, 99)}
        return {**ranks, "max": round(max(counts), 3)}
