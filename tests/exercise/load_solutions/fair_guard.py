"""A fair guard: a ticket lock on threading.Condition; each waiter is served in the order it took its ticket."""

import threading
import time


class Guard:
    def __init__(self):
        self._changed = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._given_up = set()

    def acquire(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            ticket = self._next_ticket
            self._next_ticket += 1
            while self._serving != ticket:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self._given_up.add(ticket)  # its turn is skipped when it comes
                    return False
                self._changed.wait(left)
            return True

    def release(self):
        with self._changed:
            self._serving += 1
            while self._serving in self._given_up:
                self._given_up.discard(self._serving)
                self._serving += 1
            self._changed.notify_all()
