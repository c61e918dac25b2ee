"""A wrong deposit guard: it lets everyone in, so two deposits interleave and one erases the other."""


class Guard:
    def acquire(self, timeout=None):
        return True

    def release(self):
        pass
