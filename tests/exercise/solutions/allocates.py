"""deposit-guard, broken: acquire asks for far more memory than the limit."""


class Guard:
    def acquire(self, timeout=None):
        self.hoard = bytearray(64 * 1024**3)
        return True

    def release(self):
        pass
