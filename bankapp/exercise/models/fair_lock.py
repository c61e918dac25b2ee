"""fair-lock, the model solution: a ticket lock, served in the order the tickets were taken."""

import threading


class Guard:
    """Grants in arrival order: each acquire takes the next ticket and waits until that ticket is served."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._abandoned = set()  # tickets whose holders gave up waiting: served by skipping them

    def acquire(self, timeout=None):
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            if self._cond.wait_for(lambda: self._serving == ticket, timeout):
                return True
            self._abandoned.add(ticket)
            return False

    def release(self):
        with self._cond:
            self._serving += 1
            while self._serving in self._abandoned:
                self._abandoned.discard(self._serving)
                self._serving += 1
            self._cond.notify_all()
