"""A correct admission: at most `capacity` inside; a newcomer waits at most `timeout`, then is turned away."""

import threading
import time


class Admission:
    def __init__(self, capacity):
        self._free = capacity
        self._changed = threading.Condition()

    def try_enter(self, timeout):
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._free == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            self._free -= 1
            return True

    def leave(self):
        with self._changed:
            self._free += 1
            self._changed.notify()
