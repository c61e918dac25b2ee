"""Virtual time and seeded chance for the threads of an exploration, real ones for everybody else.

Under the explorer no outcome may depend on the machine's speed: the
race window's sleep, the gateway's service time, a backoff's random wait,
the monotonic clock a lock timeout is measured on, are the explorer's.
`sleep(s)` moves the thread's virtual clock on by `s` and returns at once
(a sleep is no step: nothing else runs meanwhile, as nothing can in one
schedule); `monotonic()` reads that clock; `random` draws from a source
seeded per execution, so a schedule runs the same way every time.

The modules under test keep calling `time.sleep` and `random.uniform`:
`patch(module)` replaces their `time` and `random` names with the proxies
below, which answer for an explored thread from its execution's clock and
for any other thread (a server's request threads) from the real modules.
"""

from __future__ import annotations

import random as real_random
import threading
import time as real_time
from types import ModuleType
from typing import Any

#: Where virtual time starts (any value: only differences count).
EPOCH = 1_000_000.0

_clocks: dict[int, VirtualClock] = {}


class VirtualClock:
    """The time of one execution: it moves only when a thread sleeps or a try times out."""

    def __init__(self, seed: int = 0):
        self.now = EPOCH
        self.random = real_random.Random(seed)

    def advance_to(self, when: float) -> None:
        self.now = max(self.now, when)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds


def install_for(ident: int, clock: VirtualClock) -> None:
    _clocks[ident] = clock


def uninstall_for(idents: dict[int, Any]) -> None:
    for ident in list(idents):
        _clocks.pop(ident, None)


def current() -> VirtualClock | None:
    return _clocks.get(threading.get_ident())


class _Time:
    """`time` as the code under test sees it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(real_time, name)

    def sleep(self, seconds: float) -> None:
        clock = current()
        if clock is None:
            real_time.sleep(seconds)
        else:
            clock.sleep(seconds)

    def monotonic(self) -> float:
        clock = current()
        return real_time.monotonic() if clock is None else clock.now

    def perf_counter(self) -> float:
        clock = current()
        return real_time.perf_counter() if clock is None else clock.now

    def time(self) -> float:
        clock = current()
        return real_time.time() if clock is None else clock.now


class _Random:
    """`random` as the code under test sees it."""

    def __getattr__(self, name: str) -> Any:
        clock = current()
        return getattr(real_random if clock is None else clock.random, name)


TIME = _Time()
RANDOM = _Random()
_patched: set[str] = set()
_patching = threading.Lock()


def patch(module: ModuleType) -> None:
    """Give `module` the proxies for the `time` and `random` it imported (once; harmless to others' threads)."""
    with _patching:
        if module.__name__ in _patched:
            return
        if getattr(module, "time", None) is real_time:
            module.time = TIME  # type: ignore[attr-defined]
        if getattr(module, "random", None) is real_random:
            module.random = RANDOM  # type: ignore[attr-defined]
        _patched.add(module.__name__)
