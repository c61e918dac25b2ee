"""counting-semaphore, the model solution: a count of permits under a condition."""

import threading


class Semaphore:
    """At most `permits` holders at once; `acquire` waits (at most `timeout` s) until one is free."""

    def __init__(self, permits):
        self._cond = threading.Condition(threading.Lock())
        self._permits = permits

    def acquire(self, timeout=None):
        with self._cond:
            if not self._cond.wait_for(lambda: self._permits > 0, timeout):
                return False
            self._permits -= 1
            return True

    def release(self):
        with self._cond:
            self._permits += 1
            self._cond.notify()
