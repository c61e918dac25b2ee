"""The four guards, one class each, found by name in `GUARDS`.

A guard is what stands between a thread and shared state. Each wraps one
`threading` primitive and keeps a little bookkeeping of its own (which
threads hold it, and which wait) so that:

- a thread can never release what it did not acquire: `release()` from a
  non-holder raises `RuntimeError`, even for `threading.Lock`, which itself
  would let any thread release it;
- a nested acquire on a non-reentrant guard can be named for what it is, a
  self-deadlock, when it times out.

Every acquire is bounded: `acquire(timeout)` returns False when the timeout
runs out, exactly like `Lock.acquire(timeout=...)`; `timeout=None` waits
forever, which is how a real deadlock is shown. Forever unless someone steps
in: a thread that has to wait does so in short slices and, between them,
looks whether its wait was cancelled from outside. That is how the operator
breaks a self-deadlock nobody else can end (`break_self_deadlock`).

The bookkeeping stays off the fast path: an acquire that gets the primitive
at once records its holder in a dict entry that only the holding thread ever
writes (one dict store, atomic in CPython), so it takes no lock but the
primitive. Only a thread that has to wait takes the guard's private lock,
to join the waiters and later leave them as a holder in one step.

Adding a guard means adding one class below and one entry in `GUARDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from threading import get_ident
from typing import Any, ClassVar, TypeVar

Cancel = TypeVar("Cancel", bound=BaseException)  # what `Guard.break_self_deadlock` cancels a wait with
#: How often a thread waiting for a guard wakes to see whether its wait was cancelled.
CANCEL_CHECK_S = 0.05


@dataclass(eq=False)
class GuardWait:
    """One thread waiting for a guard since `since` (monotonic seconds).

    `error`, set from another thread, cancels the wait: the waiting thread
    raises it at its next look instead of waiting on.
    """

    ident: int
    thread: str
    since: float
    error: BaseException | None = None


class Guard:
    """Base class: holder bookkeeping around a primitive's acquire/release."""

    name: str  # each class names its kind; a database lock (`DatabaseLock`) names itself per instance
    reentrant: ClassVar[bool] = False

    def __init__(self, label: str = "", permits: int = 1):
        self.label = label
        self.permits = 1  # how many holders at once; only a semaphore has more
        # ident -> how many times it holds this guard; a thread writes its own entry only, so no lock is
        # needed to write it, and readers copy the dict (one step) before they look
        self._holders: dict[int, int] = {}
        self._waiting: dict[int, GuardWait] = {}  # ident -> its wait, under `_bookkeeping`
        self._bookkeeping = threading.Lock()

    def _acquire(self, timeout: float) -> bool:
        """The primitive's own acquire, waiting at most `timeout` (>= 0) seconds."""
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the guard; False if `timeout` seconds passed first (None: no limit).

        Raises what a cancelled wait was given (see `break_self_deadlock`).
        """
        if self._acquire(0.0):
            me = get_ident()
            self._holders[me] = self._holders.get(me, 0) + 1
            return True
        if timeout is not None and timeout <= 0:
            return False
        return self._wait(timeout)

    def _wait(self, timeout: float | None) -> bool:
        """Wait in slices of `CANCEL_CHECK_S`, looking between them whether the wait was cancelled.

        Leaving the waiters and joining the holders happen in one step under
        the bookkeeping lock, the same step that reads `error`: a wait is
        either cancelled or granted, never both.
        """
        me = threading.current_thread()
        wait = GuardWait(get_ident(), me.name, time.monotonic())
        deadline = None if timeout is None else wait.since + timeout
        with self._bookkeeping:
            self._waiting[wait.ident] = wait
        got = False
        try:
            while True:
                left = CANCEL_CHECK_S if deadline is None else min(CANCEL_CHECK_S, deadline - time.monotonic())
                got = left > 0 and self._acquire(left)
                with self._bookkeeping:
                    if wait.error is None and not got and left > 0:
                        continue
                    del self._waiting[wait.ident]
                    if wait.error is None:
                        if got:
                            self._holders[wait.ident] = self._holders.get(wait.ident, 0) + 1
                        return got
                break
        except BaseException:  # interrupted while waiting: leave the waiters
            with self._bookkeeping:
                self._waiting.pop(wait.ident, None)
            raise
        if got:  # granted in the very slice it was cancelled: give it back
            self._release()
        raise wait.error

    def break_self_deadlock(self, reason: Callable[[list[GuardWait], GuardWait], Cancel]) -> Cancel | None:
        """Cancel one wait that nobody else can end: every holder of this guard is waiting for it.

        A thread that holds a `Lock` and asks for it again waits for itself;
        two batch deposits that each hold one of a semaphore's two permits and
        ask for another wait for each other. Only a holder can release, and
        every holder waits: with `lock_timeout_ms` none, forever. The youngest
        of those waits is cancelled with `reason(stuck, victim)`: its thread
        raises it, undoes what it did and lets go, and the others go on.
        Returns the error it cancelled a wait with, or None.
        """
        if self.reentrant:
            return None  # its holder never waits for it
        with self._bookkeeping:
            held = self.holders()
            if sum(held.values()) < self.permits or not all(ident in self._waiting for ident in held):
                return None  # a place is free, or a holder is running: it will release
            stuck = [self._waiting[ident] for ident in held]
            if any(wait.error is not None for wait in stuck):
                return None  # already being broken
            victim = max(stuck, key=lambda wait: wait.since)  # the youngest: the least work lost
            error = victim.error = reason(stuck, victim)
            return error

    def waiting(self) -> list[int]:
        """Idents of the threads waiting for this guard now."""
        with self._bookkeeping:
            return list(self._waiting)

    def release(self) -> None:
        """Give the guard back; only a thread that holds it may."""
        me = get_ident()
        count = self._holders.get(me, 0)
        if count <= 0:
            raise RuntimeError(f"{self.name} guard {self.label!r}: released by a thread that does not hold it")
        if count == 1:
            del self._holders[me]
        else:
            self._holders[me] = count - 1
        self._release()

    @property
    def excludes(self) -> bool:
        """True when at most one thread at a time can be inside: mutual exclusion.

        The one place that decides it. Code that must keep other lock users
        out as well (the bank takes the account's transfer lock inside an
        excluding guard) asks this, and never the guard's name.
        """
        return True

    def held_by_current_thread(self) -> bool:
        return self._holders.get(get_ident(), 0) > 0

    def holders(self) -> dict[int, int]:
        """Thread ident -> how many times it holds this guard (a copy: holders come and go meanwhile)."""
        return self._holders.copy()

    def describe(self) -> str:
        return f"{self.name} guard of {self.label}" if self.label else f"{self.name} guard"


class UnsafeGuard(Guard):
    """No guard at all: every acquire succeeds at once, so nothing is excluded.

    This is the race condition lesson: two threads read the same balance,
    both add to what they read, and the second write erases the first.
    """

    name = "unsafe"
    reentrant = True

    @property
    def excludes(self) -> bool:
        return False

    def _acquire(self, timeout: float) -> bool:
        return True

    def _release(self) -> None:
        pass


class LockGuard(Guard):
    """`threading.Lock`: one holder at a time, and not even that one twice.

    A second `acquire()` by the thread that already holds it waits for
    itself: a self-deadlock, which only the timeout ends.
    """

    name = "lock"
    _primitive: threading.Lock | threading.RLock  # an `RLockGuard`'s is an RLock

    def __init__(self, label: str = "", permits: int = 1):
        super().__init__(label, permits)
        self._primitive = threading.Lock()

    def _acquire(self, timeout: float) -> bool:
        return self._primitive.acquire(True, timeout) if timeout else self._primitive.acquire(False)

    def _release(self) -> None:
        self._primitive.release()


class RLockGuard(LockGuard):
    """`threading.RLock`: the thread that holds it may acquire it again.

    It counts its owner's acquires and is free when they are all released, so
    code that holds the guard can call code that takes it again.
    """

    name = "rlock"
    reentrant = True

    def __init__(self, label: str = "", permits: int = 1):
        super().__init__(label, permits)
        self._primitive = threading.RLock()


class SemaphoreGuard(Guard):
    """`threading.BoundedSemaphore(permits)`: at most `permits` holders at once.

    With 1 permit it is a lock (mutual exclusion), without reentrancy. With
    more it only bounds concurrency: several threads are inside together, and
    a read-modify-write between them loses updates again. A semaphore has no
    owner, so a nested acquire just takes another permit if one is free.
    """

    name = "semaphore"

    def __init__(self, label: str = "", permits: int = 1):
        super().__init__(label, permits)
        self.permits = permits
        self._primitive = threading.BoundedSemaphore(permits)

    @property
    def excludes(self) -> bool:
        """Only a semaphore of 1 is a lock; with more permits several threads are inside together."""
        return self.permits == 1

    def _acquire(self, timeout: float) -> bool:
        return self._primitive.acquire(timeout=timeout)

    def _release(self) -> None:
        self._primitive.release()

    @property
    def available_permits(self) -> int:
        """The semaphore's own counter (CPython keeps it in `_value`)."""
        return self._primitive._value


GUARDS: dict[str, type[Guard]] = {cls.name: cls for cls in (UnsafeGuard, LockGuard, RLockGuard, SemaphoreGuard)}


def make_guard(name: str, label: str = "", permits: int = 1) -> Guard:
    """A new guard of the kind `name`."""
    try:
        cls = GUARDS[name]
    except KeyError:
        raise ValueError(f"unknown guard {name!r}; known: {', '.join(GUARDS)}") from None
    return cls(label, permits)


class GuardTimeout(Exception):
    """An acquire ran out of time; `self_deadlock` if this thread held it."""

    def __init__(self, guard: Guard, timeout: float | None, self_deadlock: bool):
        self.guard = guard
        self.timeout = timeout
        self.self_deadlock = self_deadlock
        waited = "forever" if timeout is None else f"{timeout * 1000:g} ms"
        if self_deadlock:
            message = (
                f"self-deadlock: this thread already holds the non-reentrant {guard.describe()} and its nested "
                f"acquire gave up after {waited}"
            )
        else:
            message = f"could not acquire the {guard.describe()} within {waited}"
        super().__init__(message)


class DeadlockVictim(Exception):
    """This thread was in a cycle of waits and gave up its wait: the detector or the operator chose it.

    `deadlock` is the record `/debug/locks` keeps: the cycle, each thread
    with what it holds and what it waits for. The account locks (`locks`)
    raise it, and so does a guard whose self-deadlock the operator broke.
    """

    def __init__(self, deadlock: dict[str, Any]):
        self.deadlock = deadlock
        steps = "; ".join(
            f"thread {step['thread']} holds {', '.join(step['holds']) or 'nothing'} and waits for {step['waits_for']}"
            for step in deadlock["cycle"]
        )
        chosen = (
            "The operator broke the deadlock and chose this request as the victim"
            if deadlock.get("broken_by") == "operator"
            else f"This request was chosen as the victim after waiting {deadlock['detected_after_ms']:g} ms"
        )
        super().__init__(f"deadlock: {steps}. {chosen}; it rolled back and released its locks so the others can go on")


def deadlock_record(
    deadlock_id: int,
    steps: list[dict[str, Any]],
    accounts: list[str],
    since: float,
    by: str,
    victim: str | None,
    broken_by: str | None,
) -> dict[str, Any]:
    """The record of one deadlock, as `/debug/locks` and the 409 show it; `since` is when the wait began."""
    return {
        "id": deadlock_id,
        "detected_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "detected_by": by,
        "detected_after_ms": round((time.monotonic() - since) * 1000, 1),
        "victim": victim,
        "broken": broken_by is not None,
        "broken_by": broken_by,  # "detector", "operator", or None while nobody broke it
        "accounts": accounts,
        "cycle": steps,
    }


class hold:
    """`with hold(guard, timeout):` acquires or raises `GuardTimeout`.

    The object acquired is the object released, whatever happens to the
    settings in between: the caller resolves the guard once, up front.
    """

    def __init__(self, guard: Guard, timeout: float | None):
        self.guard = guard
        self.timeout = timeout

    def __enter__(self) -> Guard:
        guard = self.guard
        if not guard.acquire(self.timeout):
            # asked only now: a failed acquire changes nothing of what this thread holds
            raise GuardTimeout(guard, self.timeout, not guard.reentrant and guard.held_by_current_thread())
        return guard

    def __exit__(self, *exc_info: object) -> None:
        self.guard.release()


class GuardSet:
    """Guards by (kind, permits, key), made on first use and kept.

    Keeping them means that switching `lock` -> `unsafe` -> `lock` returns to
    the same `Lock` objects, and a request still holding an old guard
    releases that very object.
    """

    def __init__(self) -> None:
        self._guards: dict[tuple[str, int, str], Guard] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, key: str, permits: int = 1) -> Guard:
        slot = (kind, permits if kind == "semaphore" else 1, key)
        guard = self._guards.get(slot)
        if guard is None:
            with self._lock:
                guard = self._guards.get(slot)
                if guard is None:
                    guard = self._guards[slot] = make_guard(kind, key, permits)
        return guard

    def all(self) -> list[Guard]:
        with self._lock:
            return list(self._guards.values())
