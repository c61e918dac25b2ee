"""deposit-guard, broken: acquire ends the process."""

import sys


class Guard:
    def acquire(self, timeout=None):
        sys.exit(3)

    def release(self):
        pass
