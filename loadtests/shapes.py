"""A spike of users for the admission lesson.

A few users, then many at once, then a few again: watch the semaphore turn
the excess away with 503 (filed as "checkout: rejected by admission") while
peak in flight stays at the capacity; under `unsafe` the gateway overloads
and latency climbs instead. Select it by adding `loadtests/spike.py` to the
locustfiles.

Example::

    locust -f loadtests/locustfile.py,loadtests/spike.py CheckoutUser --headless --spike-users 40
"""

from __future__ import annotations

from locust import LoadTestShape


class SpikeShape(LoadTestShape):
    """`--baseline-users` for `warmup` s, `--spike-users` for `spike` s, baseline for `cooldown` s, stop."""

    warmup = 5
    spike = 10
    cooldown = 5

    def users(self) -> tuple[int, int]:
        options = getattr(self.runner.environment, "parsed_options", None) if self.runner else None
        return getattr(options, "baseline_users", 4), getattr(options, "spike_users", 32)

    def tick(self) -> tuple[int, float] | None:
        baseline, peak = self.users()
        elapsed = self.get_run_time()
        if elapsed < self.warmup:
            return baseline, baseline
        if elapsed < self.warmup + self.spike:
            return peak, peak  # everyone at once: that is what a spike is
        if elapsed < self.warmup + self.spike + self.cooldown:
            return baseline, peak
        return None
