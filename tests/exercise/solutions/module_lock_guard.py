"""deposit-guard, right though unusual: one lock made at import, shared by every guard (too coarse, not wrong)."""

import threading

_lock = threading.Lock()


class Guard:
    def acquire(self, timeout=None):
        return _lock.acquire(timeout=-1 if timeout is None else timeout)

    def release(self):
        _lock.release()
