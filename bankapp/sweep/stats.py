"""A point's repeats summarized: the mean with a 95 % t-interval, and Little's law.

With R repeats the interval is mean +/- t(0.975, R-1) * s / sqrt(R). Student's
t is wide for small R: t(0.975, 2) = 4.30 with 3 repeats, 2.78 with 5, against
1.96 for a normal: three repeats give an interval about twice as wide as five
would for the same spread. One repeat gives no interval at all (None).

Little's law holds for any stable system: the mean number inside equals the
arrival rate times the mean time inside. A closed loop of N users, each
waiting Z seconds between its answer and its next request, keeps N requests
"inside" (in flight or thinking), so N = X * (R + Z) with X the requests per
second and R the mean response time. When the measured X and R do not give
back N, time went somewhere the measurement did not see: the load
generator's own overhead (a busy Locust takes long to send the next request),
or a window that caught the run while it was not steady.
"""

from __future__ import annotations

import math
import statistics

from scipy import stats as scipy_stats

CONFIDENCE = 0.95


def interval(values: list[float], confidence: float = CONFIDENCE) -> dict:
    """`{"mean", "low", "high", "half_width", "n"}`; low, high and half_width are None with fewer than 2 values."""
    values = [float(value) for value in values]
    count = len(values)
    mean = statistics.fmean(values) if values else 0.0
    if count < 2:
        return {"mean": mean, "low": None, "high": None, "half_width": None, "n": count}
    spread = statistics.stdev(values) / math.sqrt(count)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, count - 1)) * spread
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "n": count}


def littles_law(users: float, requests_per_s: float, mean_response_s: float, think_s: float = 0.0) -> dict:
    """N against X * (R + Z): `{"users", "x_r_z", "difference", "relative"}` (relative to N)."""
    implied = requests_per_s * (mean_response_s + think_s)
    difference = users - implied
    return {
        "users": users,
        "x_r_z": implied,
        "difference": difference,
        "relative": difference / users if users else None,
    }
