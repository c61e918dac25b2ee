"""deposit-guard, broken: acquire loops for ever inside one line of C (no line event ever comes)."""


class Guard:
    def acquire(self, timeout=None):
        return sum(range(10**15)) > 0

    def release(self):
        pass
