"""counting-semaphore, wrong: release gives the permit back but wakes nobody."""

import threading


class Semaphore:
    def __init__(self, permits):
        self._cond = threading.Condition(threading.Lock())
        self._permits = permits

    def acquire(self, timeout=None):
        with self._cond:
            while self._permits == 0:
                self._cond.wait()
            self._permits -= 1
            return True

    def release(self):
        with self._cond:
            self._permits += 1
