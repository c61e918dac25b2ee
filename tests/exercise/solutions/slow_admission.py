"""admission, wrong: it says no only a second after the timeout ran out."""

import threading
import time


class Admission:
    def __init__(self, capacity):
        self._cond = threading.Condition(threading.Lock())
        self._capacity = capacity
        self._inside = 0

    def try_enter(self, timeout):
        with self._cond:
            if self._cond.wait_for(lambda: self._inside < self._capacity, timeout):
                self._inside += 1
                return True
        time.sleep(1)  # a rejection a second late
        return False

    def leave(self):
        with self._cond:
            self._inside -= 1
            self._cond.notify()
