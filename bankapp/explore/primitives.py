"""`threading`'s primitives under the explorer's scheduler, for any code built on them.

`Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event` and `Condition`
here have `threading`'s interface and semantics (an `RLock` counts its
owner's acquires, a `BoundedSemaphore` refuses a release too many, a
condition's `wait` gives its lock up and takes it back); each acquire,
release, wait, set and notify is a step of the explored thread that calls
it, and a thread that must wait is blocked in the scheduler, never in the
operating system. A timed wait (`acquire(timeout=...)`, `wait(timeout)`)
is a try: it runs out only when nothing else can move, at the virtual time
it would. `Cell` is a shared value whose `get` and `set` are steps, for code
that races on plain data.

`patched(module)` swaps them in for the `threading` a module uses (its
`threading` name, and any of these classes it imported by name), and
`time` and `random` for the explorer's virtual ones: the module's code is
unchanged, as loom swaps its primitives in for `std::sync`. Outside an
explored thread each falls back to a real primitive of its kind, so a
patched module still works when nobody explores it.
"""

from __future__ import annotations

import contextlib
import itertools
import random as real_random
import threading as real_threading
import time as real_time
from collections.abc import Callable, Iterator
from threading import get_ident
from types import ModuleType, SimpleNamespace
from typing import Any

from ..interleave.actors import Primitive
from . import clock
from .engine import current

_numbers = itertools.count(1)


def restart_numbering() -> None:
    """Number primitives and cells from 1 again: done before each schedule's setup, so that the same object
    has the same name in every schedule (the search compares what moves touched across schedules)."""
    global _numbers
    _numbers = itertools.count(1)


def _timeout(blocking: bool, timeout: float) -> float | None:
    """`threading`'s (blocking, timeout) as the scheduler's timeout: 0 a try at once, None no limit."""
    if not blocking:
        return 0.0
    return None if timeout is None or timeout < 0 else timeout


class _Core(Primitive):
    """What the scheduler sees of a primitive: its holders, a try, a release."""

    def __init__(self, kind: str):
        self.label = f"{kind} #{next(_numbers)}"
        self.key = ("controlled", self.label)
        self.owners: dict[int, int] = {}

    def holders(self) -> dict[int, int]:
        return dict(self.owners)

    def _own(self) -> None:
        me = get_ident()
        self.owners[me] = self.owners.get(me, 0) + 1

    def _disown(self) -> None:
        me = get_ident()
        if self.owners.get(me, 0) > 1:
            self.owners[me] -= 1
        else:
            self.owners.pop(me, None)


class _LockCore(_Core):
    def __init__(self, kind: str = "Lock"):
        super().__init__(kind)
        self.locked = False

    def try_now(self) -> bool:
        if self.locked:
            return False
        self.locked = True
        self._own()
        return True

    def release(self) -> None:
        if not self.locked:
            raise RuntimeError("release unlocked lock")
        self.locked = False
        self.owners.clear()  # a Lock has no owner: any thread may release it


class _RLockCore(_Core):
    def __init__(self) -> None:
        super().__init__("RLock")

    def try_now(self) -> bool:
        if self.owners and get_ident() not in self.owners:
            return False
        self._own()
        return True

    def release(self) -> None:
        if get_ident() not in self.owners:
            raise RuntimeError("cannot release un-acquired lock")
        self._disown()


class _SemaphoreCore(_Core):
    def __init__(self, value: int, bound: int | None):
        super().__init__("Semaphore" if bound is None else "BoundedSemaphore")
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self.value = value
        self.bound = bound

    def try_now(self) -> bool:
        if self.value <= 0:
            return False
        self.value -= 1
        self._own()
        return True

    def release(self, n: int = 1) -> None:
        if self.bound is not None and self.value + n > self.bound:
            raise ValueError("Semaphore released too many times")
        self.value += n
        if self.owners:  # no owner in truth; the oldest holder is the one shown as gone
            self.owners.pop(next(iter(self.owners)))


class _Tokens(_Core):
    """A gate that lets a waiter through while it has tokens: an event's flag, a condition's notifications."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.tokens = 0
        self.forever = False  # an event, once set, lets everyone through until cleared

    def try_now(self) -> bool:
        if self.forever:
            return True
        if self.tokens > 0:
            self.tokens -= 1
            return True
        return False

    def release(self) -> None:  # nothing is held
        pass


class _Controlled:
    """Calls go to the scheduler when an explored thread makes them, else to a real primitive of the kind."""

    _core: _Core
    _real: Any


class Lock(_Controlled):
    def __init__(self) -> None:
        self._core: _LockCore | _RLockCore = _LockCore()  # an `RLock`'s is an `_RLockCore`
        self._real = real_threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        explorer = current()
        if explorer is None:
            return self._real.acquire(blocking, timeout)
        wait = _timeout(blocking, timeout)
        return explorer.acquire(self._core, wait, patient=wait is None)

    def release(self) -> None:
        explorer = current()
        if explorer is None:
            self._real.release()
        else:
            explorer.release(self._core)

    def locked(self) -> bool:
        return self._core.locked if current() and isinstance(self._core, _LockCore) else self._real.locked()

    __enter__ = acquire

    def __exit__(self, *exc_info) -> None:
        self.release()


class RLock(Lock):
    def __init__(self) -> None:
        self._core = _RLockCore()
        self._real = real_threading.RLock()

    def locked(self) -> bool:
        return bool(self._core.owners)


class Semaphore(_Controlled):
    def __init__(self, value: int = 1):
        self._core: _SemaphoreCore = _SemaphoreCore(value, None)
        self._real = real_threading.Semaphore(value)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        explorer = current()
        if explorer is None:
            return self._real.acquire(blocking, timeout)
        wait = _timeout(blocking, -1 if timeout is None else timeout)
        return explorer.acquire(self._core, wait, patient=wait is None)

    def release(self, n: int = 1) -> None:
        explorer = current()
        if explorer is None:
            self._real.release(n)
        else:
            explorer.release(_Released(self._core, n))

    __enter__ = acquire

    def __exit__(self, *exc_info) -> None:
        self.release()


class BoundedSemaphore(Semaphore):
    def __init__(self, value: int = 1):
        self._core = _SemaphoreCore(value, value)
        self._real = real_threading.BoundedSemaphore(value)


class _Released(Primitive):
    """A semaphore seen by a release of `n` permits."""

    def __init__(self, core: _SemaphoreCore, n: int):
        self.core, self.n = core, n
        self.key, self.label = core.key, core.label

    def holders(self) -> dict[int, int]:
        return self.core.holders()

    def release(self) -> None:
        self.core.release(self.n)


class Event(_Controlled):
    def __init__(self) -> None:
        self._core: _Tokens = _Tokens("Event")
        self._real = real_threading.Event()

    def is_set(self) -> bool:
        return self._core.forever if current() else self._real.is_set()

    def set(self) -> None:
        explorer = current()
        if explorer is None:
            self._real.set()
        else:
            explorer.signal(self._core, "set", lambda: setattr(self._core, "forever", True))

    def clear(self) -> None:
        explorer = current()
        if explorer is None:
            self._real.clear()
        else:
            explorer.signal(self._core, "clear", lambda: setattr(self._core, "forever", False))

    def wait(self, timeout: float | None = None) -> bool:
        explorer = current()
        if explorer is None:
            return self._real.wait(timeout)
        return explorer.acquire(self._core, timeout, patient=timeout is None, kind="wait")


class Condition(_Controlled):
    """`threading.Condition`: `wait` gives up the lock and sleeps until notified, then takes the lock back."""

    def __init__(self, lock: Any = None):
        self._lock = RLock() if lock is None else lock
        self._core: _Tokens = _Tokens("Condition")
        self._waiting = 0
        self._real = real_threading.Condition(self._lock._real if isinstance(self._lock, _Controlled) else self._lock)

    def acquire(self, *args: Any) -> bool:
        return self._lock.acquire(*args)

    def release(self) -> None:
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc_info) -> None:
        self.release()

    def wait(self, timeout: float | None = None) -> bool:
        explorer = current()
        if explorer is None:
            return self._real.wait(timeout)
        lock = self._lock._core
        if get_ident() not in lock.owners:
            raise RuntimeError("cannot wait on un-acquired lock")
        times = lock.owners[get_ident()] if isinstance(lock, _RLockCore) else 1
        self._waiting += 1
        runner = explorer._runner()
        assert runner is not None, "an explored thread is a runner"
        explorer._enter(runner, "wait", self._core.label)
        for _ in range(times):  # gives the lock up wholly, as an RLock's _release_save does
            explorer.release(lock, kind="")
        try:
            notified = explorer.acquire(self._core, timeout, patient=timeout is None, kind="")
        finally:
            self._waiting -= 1
        for _ in range(times):
            explorer.acquire(lock, None, kind="acquire" if _ == 0 else "")
        return notified

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        result = predicate()
        while not result:
            if not self.wait(timeout) and timeout is not None:
                return predicate()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        explorer = current()
        if explorer is None:
            self._real.notify(n)
            return
        if get_ident() not in self._lock._core.owners:
            raise RuntimeError("cannot notify on un-acquired lock")

        def wake() -> None:
            self._core.tokens = min(n, self._waiting)

        explorer.signal(self._core, "notify", wake)

    def notify_all(self) -> None:
        self.notify(max(1, self._waiting))


class Cell:
    """A shared value whose `get` and `set` are steps (read, write): plain data, raced on."""

    def __init__(self, value: Any = None, name: str | None = None):
        self.value = value
        self.name = name or f"cell #{next(_numbers)}"

    def get(self) -> Any:
        explorer = current()
        return self.value if explorer is None else explorer.access("read", self.name, lambda: self.value)

    def set(self, value: Any) -> None:
        explorer = current()
        if explorer is None:
            self.value = value
        else:
            explorer.access("write", self.name, lambda: setattr(self, "value", value), value=value)


#: What a patched module sees as `threading`: these primitives, the rest of the real module.
THREADING = SimpleNamespace(
    **{name: getattr(real_threading, name) for name in dir(real_threading) if not name.startswith("__")},
)
for _cls in (Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition):
    setattr(THREADING, _cls.__name__, _cls)
_REAL = {
    getattr(real_threading, cls.__name__): cls for cls in (Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition)
}


def _real_primitive(value: Any) -> bool:
    try:
        return value in _REAL
    except TypeError:  # unhashable
        return False


@contextlib.contextmanager
def patched(*modules: ModuleType) -> Iterator[None]:
    """Within the block, `modules` use the controlled primitives and the explorer's time and chance."""
    saved: list[tuple[ModuleType, str, Any]] = []
    for module in modules:
        for name, value in list(vars(module).items()):
            replacement: object = None
            if value is real_threading:
                replacement = THREADING
            elif value is real_time:
                replacement = clock.TIME
            elif value is real_random:
                replacement = clock.RANDOM
            elif callable(value) and _real_primitive(value):
                replacement = _REAL[value]
            if replacement is not None:
                saved.append((module, name, value))
                setattr(module, name, replacement)
    try:
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)
