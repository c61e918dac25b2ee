"""A bounded sample of durations and its percentiles.

A server that kept every latency it ever measured would grow without end;
`Reservoir` keeps the most recent `size` samples in a `deque(maxlen=size)`,
which drops the oldest as a new one arrives, so memory is fixed and the
percentiles describe recent traffic. Not thread-safe on its own: the owner
calls it under the lock that guards its other counters.

Example::

    waits = Reservoir(size=1000)
    waits.add(12.5)
    waits.summary()  # {"p50": 12.5, "p95": 12.5, "p99": 12.5, "max": 12.5}
"""

from __future__ import annotations

import math
from collections import deque


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
        ordered = sorted(self._samples)
        if not ordered:
            return {"p50": None, "p95": None, "p99": None, "max": None}

        def rank(percent: float) -> float:
            return round(ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)], 3)

        return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": round(ordered[-1], 3)}
