"""Defines the wrong name."""


class Lock:
    def acquire(self, timeout=None):
        return True

    def release(self):
        pass
