"""deposit-guard, broken: acquire never returns."""


class Guard:
    def acquire(self, timeout=None):
        while True:
            pass

    def release(self):
        pass
