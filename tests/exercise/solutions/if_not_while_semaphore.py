"""counting-semaphore, wrong: waits with `if`, not `while`; two woken waiters both take the one permit."""

import threading


class Semaphore:
    def __init__(self, permits):
        self._cond = threading.Condition(threading.Lock())
        self._permits = permits

    def acquire(self, timeout=None):
        with self._cond:
            if self._permits == 0:
                self._cond.wait(timeout)
            self._permits -= 1
            return True

    def release(self):
        with self._cond:
            self._permits += 1
            self._cond.notify_all()
