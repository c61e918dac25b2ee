"""deposit-guard, unloadable: the class is misnamed."""


class Gaurd:
    def acquire(self, timeout=None):
        return True

    def release(self):
        pass
