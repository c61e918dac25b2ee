"""A wrong deposit guard on a plain flag: check, then set; two threads both see it clear."""

import time


class Guard:
    def __init__(self):
        self.held = False

    def acquire(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.held:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        time.sleep(0.001)  # the gap between the check and the set, where another thread gets in
        self.held = True
        return True

    def release(self):
        self.held = False
