"""Code under test for tests/explore/test_explore_threads.py: plain `threading`, as a trainee writes it.

Nothing here knows the explorer; the test swaps its primitives in underneath `threading`.
"""

import threading

from bankapp.explore.primitives import Cell


class Counter:
    """A counter whose increment is a read and a write of shared data, guarded or not."""

    def __init__(self, guarded: bool):
        self.value = Cell(0, "counter")
        self.lock = threading.Lock() if guarded else None

    def increment(self) -> None:
        if self.lock is None:
            self.value.set(self.value.get() + 1)
            return
        with self.lock:
            self.value.set(self.value.get() + 1)


class Semaphore:
    """A counting semaphore built from `threading.Condition` (the `counting-semaphore` exercise)."""

    def __init__(self, permits: int, notify: bool = True):
        self._cond = threading.Condition(threading.Lock())
        self._permits = permits
        self._notify = notify
        self.inside = Cell(0, "inside")
        self.peak = 0

    def acquire(self) -> None:
        with self._cond:
            while self._permits == 0:
                self._cond.wait()
            self._permits -= 1

    def release(self) -> None:
        with self._cond:
            self._permits += 1
            if self._notify:
                self._cond.notify()

    def use(self) -> None:
        self.acquire()
        try:
            now = self.inside.get() + 1
            self.inside.set(now)
            self.peak = max(self.peak, now)
            self.inside.set(self.inside.get() - 1)
        finally:
            self.release()


def two_locks(first: threading.Lock, second: threading.Lock) -> None:
    with first, second:
        pass


def reenter(lock) -> None:
    with lock, lock:
        pass
