"""deposit-guard, wrong: acquire takes the lock and lets it go again before the caller writes."""

import threading


class Guard:
    def __init__(self):
        self._lock = threading.Lock()

    def acquire(self, timeout=None):
        with self._lock:  # released when acquire returns: before the write it was to guard
            return True

    def release(self):
        pass
