"""An unfair guard on purpose: the newest waiter is served first (a stack), so whenever two wait, the later
comer overtakes the earlier one. A plain threading.Lock promises no order but may happen to keep one on a quiet
machine; this one never does."""

import threading
import time


class Guard:
    def __init__(self):
        self._changed = threading.Condition()
        self._held = False
        self._waiting = []  # tickets, the newest last: served first

    def acquire(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            if not self._held and not self._waiting:
                self._held = True
                return True
            ticket = object()
            self._waiting.append(ticket)
            while self._held or self._waiting[-1] is not ticket:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self._waiting.remove(ticket)
                    self._changed.notify_all()
                    return False
                self._changed.wait(left)
            self._waiting.pop()
            self._held = True
            return True

    def release(self):
        with self._changed:
            self._held = False
            self._changed.notify_all()
