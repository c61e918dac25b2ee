"""deposit-guard, wrong: a plain boolean flag, checked then set, with a busy wait."""


class Guard:
    def __init__(self):
        self.held = False

    def acquire(self, timeout=None):
        while self.held:
            pass
        self.held = True
        return True

    def release(self):
        self.held = False
