"""reentrant-guard, the model solution: an owner and a count, under a condition."""

import threading


class Guard:
    """Its holder may acquire again; the guard is free when every acquire has been released."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._owner = None
        self._count = 0

    def acquire(self, timeout=None):
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._count += 1
                return True
            if not self._cond.wait_for(lambda: self._owner is None, timeout):
                return False
            self._owner = me
            self._count = 1
            return True

    def release(self):
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release by a thread that does not hold the guard")
            self._count -= 1
            if self._count == 0:
                self._owner = None
                self._cond.notify()
