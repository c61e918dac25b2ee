"""Who is writing, and what they read: the context every versioned write records.

The domain imports nothing of Flask, yet a write must name the request it
belongs to. The web layer sets `CALLER` (a `ContextVar`) at the start of
each request, with the request's id (`X-Request-Id`) and what it does
("deposit", "transfer"); the store reads it when it writes, with the
thread's name and the process id. A test, or any other caller, sets it the
same way with `calling()`.

`ReadsSeen` is what each thread last read of each account: the balance,
the version and when. A write looks up the read it was computed from, so
the domain's read-modify-write stays as it is (`balance = read(); ...;
write(balance + amount)`) and the store still knows what the write read.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple


class Caller(NamedTuple):
    """The request a write belongs to: its id, and what it does (None when nobody said)."""

    request_id: str | None = None
    operation: str | None = None


#: Writes made outside any request (a test, a shell) belong to nobody in particular.
NOBODY = Caller()
CALLER: ContextVar[Caller] = ContextVar("bankapp_caller", default=NOBODY)


@contextmanager
def calling(request_id: str | None, operation: str | None) -> Iterator[None]:
    """Inside the block, this thread's writes belong to request `request_id`, doing `operation`.

    Example::

        with calling("req-7", "deposit"):
            bank.deposit("acc-00", 100)
    """
    token = CALLER.set(Caller(request_id, operation))
    try:
        yield
    finally:
        CALLER.reset(token)


class Who(NamedTuple):
    """Who makes the write about to happen on this thread."""

    request_id: str | None
    operation: str | None
    thread: str
    pid: int


def who() -> Who:
    caller = CALLER.get()
    return Who(caller.request_id, caller.operation, *thread_and_pid())


#: This thread's name and the process id, as its first write found them: `getpid()` is a system call, and
#: every write records both. A forked child starts afresh (its pid is another).
_here = threading.local()


def _forget() -> None:
    global _here
    _here = threading.local()


os.register_at_fork(after_in_child=_forget)


def thread_and_pid() -> tuple[str, int]:
    """The name of the thread writing and the process id, as a write records them."""
    try:
        kept: tuple[str, int] = _here.thread_and_pid
        return kept
    except AttributeError:
        found = _here.thread_and_pid = (threading.current_thread().name, os.getpid())
        return found


class ReadsSeen(threading.local):
    """What each thread last read of each account: (balance, version, epoch seconds).

    A `threading.local`: every thread that uses it gets its own `reads`,
    made by `__init__` on its first use, so no lock is needed.
    """

    def __init__(self) -> None:
        self.reads: dict[str, tuple[int, int, float]] = {}

    def remember(self, account_id: str, balance: int, version: int, at: float | None = None) -> None:
        self.reads[account_id] = (balance, version, time.time() if at is None else at)

    def take(self, account_id: str) -> tuple[int, int, float] | None:
        """The read a write is computed from, forgotten as it is taken; None if this thread read nothing."""
        return self.reads.pop(account_id, None)
