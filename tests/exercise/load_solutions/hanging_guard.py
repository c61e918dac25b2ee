"""A wrong guard that never returns from acquire: the judge must end, and say the calls hung."""

import time


class Guard:
    def acquire(self, timeout=None):
        time.sleep(3600)
        return True

    def release(self):
        pass
