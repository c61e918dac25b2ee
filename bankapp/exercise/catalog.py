"""The exercises, in the seed course's order: each a task in words, an interface, a hint, a starter and a model.

A trainee reads the task in two minutes: what to write, its interface,
and what "correct" means (how `bankapp exercise check` judges it). The
hint is held back until asked for (`show NAME --hint`) or until a check
fails. The starter file has the interface and a `TODO`; the model solution
ships in `models/` (`models/deposit_guard.py` for `deposit-guard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODELS = Path(__file__).parent / "models"


@dataclass(frozen=True)
class Member:
    """A name the trainee's file must define: a class with methods, or a function; `calls` are the arguments
    each is called with (after `self`), to check its signature before anything runs."""

    name: str
    calls: dict[str, tuple] | None = None  # method -> positional arguments; None: a function

    @property
    def is_class(self) -> bool:
        return self.calls is not None


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    member: Member
    task: str
    correct: str
    hint: str
    starter: str

    @property
    def model(self) -> Path:
        """The lab's own solution (`models/<name with _>.py`): it passes, and sets the speed to compare with."""
        return MODELS / f"{self.name.replace('-', '_')}.py"


GUARD = Member("Guard", {"__init__": (), "acquire": (None,), "release": ()})

_GUARD_STARTER = '''"""{name}: {title}. Run: bankapp exercise check {name} THIS_FILE"""

import threading


class Guard:
    """{doc}"""

    def __init__(self):
        pass  # TODO: what the guard needs (a lock, a condition, counters)

    def acquire(self, timeout=None) -> bool:
        """Wait until this thread may go on (at most `timeout` s; None: no limit); True when it may."""
        raise NotImplementedError  # TODO

    def release(self) -> None:
        """Let the next thread in."""
        raise NotImplementedError  # TODO
'''

EXERCISES = {
    e.name: e
    for e in (
        Exercise(
            "deposit-guard",
            "a guard that makes a deposit's read and write one step",
            GUARD,
            "Write `class Guard` with `acquire(self, timeout=None) -> bool` and `release(self) -> None`. The bank "
            "makes one Guard per account and runs every deposit as: `guard.acquire()`, read the balance, write "
            "balance + amount, `guard.release()`. Two deposits at once must both count. You may use anything "
            "of `threading`.",
            "deposit: two deposits into one account, every schedule of them: the balance grows by both "
            "(no lost update), acquire() with no timeout says True, no exception, no deadlock, no busy wait.",
            "The race is between the read and the write: while one thread holds the guard, another's acquire "
            "must wait. A plain flag (`while self.held: pass` then `self.held = True`) has its own race between "
            "the check and the set; a threading.Lock does the check and the set as one step. "
            "`lock.acquire(timeout=-1)` waits for ever.",
            _GUARD_STARTER.format(
                name="deposit-guard",
                title="a guard for deposits",
                doc="One per account: at most one holder at a time.",
            ),
        ),
        Exercise(
            "reentrant-guard",
            "a guard its holder may take again",
            GUARD,
            "The same `class Guard` (`acquire(self, timeout=None) -> bool`, `release(self) -> None`), but the "
            "thread that holds it may acquire it again: a batch deposit holds the guard and each of its deposits "
            "acquires it once more. The guard is free again only when every acquire has been released.",
            "batch: a batch (acquire, two deposits each under acquire/release, release) beside a deposit: the "
            "batch never waits for itself (no self-deadlock) and nobody gets in while it holds the guard; "
            "deposit: no lost update. Every schedule.",
            "Remember who holds the guard (`threading.get_ident()`) and how many times: acquire by the holder "
            "counts up, release counts down, and only at zero may a waiter in (a `threading.Condition` to wait "
            "on, `notify` at zero).",
            _GUARD_STARTER.format(
                name="reentrant-guard",
                title="a re-entrant guard",
                doc="At most one holder at a time; the holder may acquire again.",
            ),
        ),
        Exercise(
            "counting-semaphore",
            "a semaphore built from a condition",
            Member("Semaphore", {"__init__": (2,), "acquire": (None,), "release": ()}),
            "Write `class Semaphore` with `__init__(self, permits)`, `acquire(self, timeout=None) -> bool` and "
            "`release(self)`, from `threading.Condition` (not threading.Semaphore). At most `permits` threads "
            "hold it at once; acquire waits for a permit, at most `timeout` s, and says whether it got one.",
            "checkout: checkouts through the semaphore (1 permit, 2 threads): never more inside than permits "
            "(over-capacity), and at the end every permit is back (no permit lost, none made). Every schedule.",
            "Keep the count of free permits under the condition's lock. Wait in a `while` loop (or `wait_for`), "
            "not an `if`: a waiter woken is not a waiter that may go; another may have taken the permit first. "
            "release adds one and `notify()`s.",
            '''"""counting-semaphore. Run: bankapp exercise check counting-semaphore THIS_FILE"""

import threading


class Semaphore:
    """At most `permits` holders at once."""

    def __init__(self, permits):
        pass  # TODO: a threading.Condition and the count of free permits

    def acquire(self, timeout=None) -> bool:
        """Wait for a free permit (at most `timeout` s; None: no limit) and take it; True when taken."""
        raise NotImplementedError  # TODO

    def release(self) -> None:
        """Give a permit back, and wake a waiter."""
        raise NotImplementedError  # TODO
''',
        ),
        Exercise(
            "transfer-order",
            "the order that makes transfers deadlock-free",
            Member("lock_order"),
            "Write `def lock_order(a: str, b: str) -> tuple[str, str]`: the two account ids of a transfer, in "
            "the order its two locks are taken. The desk does `first, second = lock_order(source, target)`, "
            "takes first's lock, then second's, moves the money, releases both.",
            "transfer: two transfers in opposite directions (acc-00 to acc-01 and back): no deadlock in any "
            "schedule, and the total is conserved. It must return the two ids it was given, once each.",
            "A deadlock needs a cycle of waiting: A holds 00 and waits for 01 while B holds 01 and waits for 00. "
            "If every transfer takes the two locks in one global order, whichever way the money goes, no cycle "
            "can form.",
            '''"""transfer-order: lock ordering. Run: bankapp exercise check transfer-order THIS_FILE"""


def lock_order(a: str, b: str) -> tuple[str, str]:
    """The two account ids in the order their locks are taken."""
    return (a, b)  # TODO: this is the naive order; it deadlocks
''',
        ),
        Exercise(
            "fair-lock",
            "a guard that serves in arrival order",
            GUARD,
            "Write a `class Guard` (`acquire(self, timeout=None) -> bool`, `release(self) -> None`) that grants "
            "in arrival order: a thread that is waiting is never overtaken by one that came after it.",
            "fair: three deposits: no lost update, and no waiter overtaken: a thread that arrives while another "
            "is already waiting must not get the guard first. Every schedule.",
            "A flag and a condition let a newcomer barge in between a release and the woken waiter taking the "
            "guard. Take a ticket on arrival (a counter), serve tickets in order (another counter), wait until "
            "yours is served, and `notify_all` on release.",
            _GUARD_STARTER.format(
                name="fair-lock",
                title="a fair lock",
                doc="At most one holder at a time, granted in arrival order.",
            ),
        ),
        Exercise(
            "admission",
            "admission control: a place, or a prompt no",
            Member("Admission", {"__init__": (2,), "try_enter": (0.1,), "leave": ()}),
            "Write `class Admission` with `__init__(self, capacity)`, `try_enter(self, timeout) -> bool` and "
            "`leave(self)`. At most `capacity` checkouts are inside at once; try_enter waits at most `timeout` "
            "s for a place and then says False; leave frees a place.",
            "checkout under load: two checkouts with a capacity of 1, the one inside staying until the other has "
            "its answer: never over capacity; a rejection comes within the timeout plus 50 ms (virtual time); "
            "every place is free at the end. Every schedule.",
            "Count who is inside under a `threading.Condition`; `wait_for(lambda: inside < capacity, timeout)` "
            "returns False when the time ran out: say no then, at once. leave counts down and `notify()`s.",
            '''"""admission: admission control. Run: bankapp exercise check admission THIS_FILE"""

import threading


class Admission:
    """At most `capacity` inside at once."""

    def __init__(self, capacity):
        pass  # TODO

    def try_enter(self, timeout) -> bool:
        """Wait at most `timeout` s for a place; True when in, False (promptly) when the time ran out."""
        raise NotImplementedError  # TODO

    def leave(self) -> None:
        """Free a place."""
        raise NotImplementedError  # TODO
''',
        ),
    )
}
