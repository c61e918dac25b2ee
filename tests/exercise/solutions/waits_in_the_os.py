"""deposit-guard, broken: acquire waits in the operating system, where no scheduler can see it."""

import select


class Guard:
    def acquire(self, timeout=None):
        select.select([], [], [], 3600)
        return True

    def release(self):
        pass
