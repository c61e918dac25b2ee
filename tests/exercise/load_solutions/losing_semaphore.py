"""A wrong semaphore: safe under its lock, but every fifth release forgets to give its permit back."""

import threading
import time


class Semaphore:
    def __init__(self, permits):
        self._permits = permits
        self._releases = 0
        self._free = threading.Condition()

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
            self._releases += 1
            if self._releases % 5:  # the bug: the fifth, tenth, ... permit is lost
                self._permits += 1
                self._free.notify()
