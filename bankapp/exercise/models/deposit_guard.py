"""deposit-guard, the model solution: one lock per account; `acquire` waits for it (at most `timeout` s)."""

import threading


class Guard:
    """At most one holder at a time: a deposit's read and write happen with nobody else between them."""

    def __init__(self):
        self._lock = threading.Lock()

    def acquire(self, timeout=None):
        return self._lock.acquire(timeout=-1 if timeout is None else timeout)

    def release(self):
        self._lock.release()
