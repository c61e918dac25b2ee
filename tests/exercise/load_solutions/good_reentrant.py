"""A correct re-entrant guard: its holder may acquire again, and it is free once every acquire is released."""

import threading


class Guard:
    def __init__(self):
        self._lock = threading.Lock()
        self._owner = None
        self._count = 0

    def acquire(self, timeout=None):
        me = threading.get_ident()
        if self._owner == me:
            self._count += 1
            return True
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        self._owner, self._count = me, 1
        return True

    def release(self):
        self._count -= 1
        if self._count == 0:
            self._owner = None
            self._lock.release()
