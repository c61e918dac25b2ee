"""Token buckets, one per key (a client's address, a team): how often grades may be posted.

A bucket holds up to `capacity` tokens and gains `per_second` of them as time
passes; a post takes one, and a post that finds the bucket empty is refused
with the time until a token is back (the 429's `Retry-After`). A burst of
`capacity` posts passes at once; after that, one post per `1 / per_second`
seconds. The buckets are bounded too: a full bucket is the same as none, so
full buckets are forgotten when room is needed, and when every bucket is
still in use a new key is refused until one refills.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimited(Exception):
    """A post refused for now: its bucket is empty, or too many keys are being limited at once."""

    def __init__(self, kind: str, key: str, retry_after: float, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.key = key
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (`Retry-After` takes no fraction)."""
        return str(max(1, math.ceil(self.retry_after)))


class TokenBuckets:
    """A token bucket per key, under one lock, at most `max_keys` of them.

    Example::

        per_team = TokenBuckets("team", capacity=6, per_second=0.2)
        per_team.take("red")   # raises RateLimited once red has posted 6 times in a burst
    """

    def __init__(
        self,
        kind: str,
        capacity: int,
        per_second: float,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ):
        if capacity < 1 or per_second <= 0 or max_keys < 1:
            raise ValueError("a bucket needs capacity >= 1, per_second > 0 and max_keys >= 1")
        self.kind = kind
        self.capacity = capacity
        self.per_second = per_second
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key: (tokens, when counted)

    def _tokens(self, key: str, now: float) -> float:
        tokens, counted = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - counted) * self.per_second)

    def take(self, key: str) -> None:
        """Take a token from `key`'s bucket, or raise `RateLimited` (and take nothing)."""
        with self._lock:
            now = self.clock()
            if key not in self._buckets and len(self._buckets) >= self.max_keys:
                self._forget_full(now)
                if len(self._buckets) >= self.max_keys:
                    raise RateLimited(
                        self.kind,
                        key,
                        1 / self.per_second,
                        f"too many {self.kind}s posting at once (at most {self.max_keys} are tracked); try again later",
                    )
            tokens = self._tokens(key, now)
            if tokens < 1:
                wait = (1 - tokens) / self.per_second
                raise RateLimited(
                    self.kind,
                    key,
                    wait,
                    f"{self.kind} {key} posted more than {self.capacity} grades in a burst "
                    f"(then one per {1 / self.per_second:g} s); try again in {math.ceil(wait)} s",
                )
            self._buckets[key] = (tokens - 1, now)

    def _forget_full(self, now: float) -> None:
        for key in [key for key in self._buckets if self._tokens(key, now) >= self.capacity]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
