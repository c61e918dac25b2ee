"""fair-lock, wrong: a flag under a condition; a newcomer can take the guard before the woken waiter."""

import threading


class Guard:
    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._held = False

    def acquire(self, timeout=None):
        with self._cond:
            while self._held:
                self._cond.wait()
            self._held = True
            return True

    def release(self):
        with self._cond:
            self._held = False
            self._cond.notify()
