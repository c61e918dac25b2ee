"""A guard whose acquire raises: the server must answer a problem naming this file and line, and live on."""


class Guard:
    def acquire(self, timeout=None):
        raise ZeroDivisionError("the trainee divided by zero")

    def release(self):
        pass
