"""reentrant-guard, wrong: it remembers its owner but not how many times the owner acquired."""

import threading


class Guard:
    def __init__(self):
        self._lock = threading.Lock()
        self._owner = None

    def acquire(self, timeout=None):
        if self._owner == threading.get_ident():
            return True  # the holder again: no count kept
        self._lock.acquire()
        self._owner = threading.get_ident()
        return True

    def release(self):
        self._owner = None
        self._lock.release()  # the first release frees it, though the holder still holds it
