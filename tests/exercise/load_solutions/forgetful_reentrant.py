"""A wrong re-entrant guard: it lets its holder in again but forgets the count, so the first release frees it."""

import threading


class Guard:
    def __init__(self):
        self._lock = threading.Lock()
        self._owner = None

    def acquire(self, timeout=None):
        me = threading.get_ident()
        if self._owner == me:
            return True
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        self._owner = me
        return True

    def release(self):
        self._owner = None
        self._lock.release()  # the outer release then releases a lock nobody holds
