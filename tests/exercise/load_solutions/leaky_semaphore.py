"""A wrong semaphore: it checks the count, then takes it, with no lock between: over capacity under load."""

import time


class Semaphore:
    def __init__(self, permits):
        self._permits = permits

    def acquire(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._permits <= 0:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        time.sleep(0.002)  # between the check and the take
        self._permits -= 1
        return True

    def release(self):
        self._permits += 1
