"""deposit-guard, wrong: a semaphore of 2 used as a lock lets two deposits in at once."""

import threading


class Guard:
    def __init__(self):
        self._permits = threading.Semaphore(2)

    def acquire(self, timeout=None):
        return self._permits.acquire(timeout=timeout)

    def release(self):
        self._permits.release()
