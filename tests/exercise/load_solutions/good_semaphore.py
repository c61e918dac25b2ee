"""A correct counting semaphore from threading.Condition."""

import threading
import time


class Semaphore:
    def __init__(self, permits):
        self._permits = permits
        self._free = threading.Condition(threading.Lock())

    def acquire(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._free:
            while self._permits == 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._free.wait(left)
            self._permits -= 1
            return True

    def release(self):
        with self._free:
            self._permits += 1
            self._free.notify()
