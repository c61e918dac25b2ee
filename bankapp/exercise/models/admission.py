"""admission, the model solution: a count of who is in, under a condition; a timed wait for a place."""

import threading


class Admission:
    """At most `capacity` inside; `try_enter` waits at most `timeout` s for a place, then says no."""

    def __init__(self, capacity):
        self._cond = threading.Condition(threading.Lock())
        self._capacity = capacity
        self._inside = 0

    def try_enter(self, timeout):
        with self._cond:
            if not self._cond.wait_for(lambda: self._inside < self._capacity, timeout):
                return False
            self._inside += 1
            return True

    def leave(self):
        with self._cond:
            self._inside -= 1
            self._cond.notify()
