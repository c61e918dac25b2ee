"""A replay's threads as the stepper sees them: the locks they wait on, where each thread is, what it answered.

`Primitive` is what the stepper needs of a lock, whichever kind (see
`stepping`). An `Actor` is one thread: its steps, which of them the schedule
names, and where it is among them; a call that is not its next planned
step (a rollback after a deadlock, a check that failed) runs without a
pause, and so does everything after it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..lab.bank import InsufficientFunds
from ..lab.guards import DeadlockVictim, GuardTimeout
from .schedule import LOCK_KINDS, Step

#: Prefix of the replay threads' names: `interleave-a` is thread `a`.
THREAD_PREFIX = "interleave-"

PAUSED, RUNNING, BLOCKED, WOKEN, DONE = "paused", "running", "blocked", "woken", "done"


class Primitive:
    """What the stepper needs of a lock: who holds it, a try, a real wait, a real release."""

    key: tuple
    label: str
    permits: int = 1
    #: True when the lock itself serves its waiters in order (the account locks); else the stepper queues them
    fair: bool = False

    def holders(self) -> dict[int, int]:
        raise NotImplementedError

    def try_now(self) -> bool:
        raise NotImplementedError

    def wait(self, timeout: float | None) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


def not_started() -> Any:
    """An actor's operation until its lab is built (`replay` sets the real one before any thread starts)."""
    raise RuntimeError("this actor's operation is set once its lab is built")


@dataclass(eq=False)
class Actor:
    """One replay thread: its steps, which of them the schedule names, and where it is."""

    name: str
    does: str
    operation: Callable[[], Any]
    steps: list[Step]
    named: list[int] = field(default_factory=list)  # indexes into `steps` the schedule names, in order
    owner: list[int] = field(default_factory=list)  # for each step, the named step (index into `named`) it runs with
    state: str = PAUSED
    go: int = 0  # how many of its named steps the schedule has released
    at: int = 0  # the named step it is paused at
    cursor: tuple[int, int] = (0, 0)  # next call: (step, call within the step)
    diverged: bool = False  # left its planned steps (it failed, or took another path): the rest runs unpaused
    label: str = ""  # the named step its calls belong to now, as `a.read`
    ident: int | None = None
    blocked_on: Primitive | None = None
    held: Counter = field(default_factory=Counter)  # primitive key -> acquires that returned True
    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def plan(self, locks_named: bool) -> None:
        """Which steps pause (the named ones) and which run with a neighbour (acquires with the next, releases
        with the one before)."""
        self.named = [i for i, s in enumerate(self.steps) if locks_named or s.kind not in LOCK_KINDS]
        position = {step: n for n, step in enumerate(self.named)}
        self.owner = []
        for i, step in enumerate(self.steps):
            if i in position:
                self.owner.append(position[i])
                continue
            before = [position[j] for j in self.named if j < i]
            after = [position[j] for j in self.named if j > i]
            if step.kind == "acquire":
                self.owner.append(after[0] if after else before[-1])
            else:
                self.owner.append(before[-1] if before else after[0])
        self.label = f"{self.name}.{self.steps[self.named[0]].kind}"

    def match(self, kind: str, target: str) -> int | None:
        """The planned step this call is, advancing the cursor; None (and diverged from now on) if it is not."""
        step, call = self.cursor
        if self.diverged or step >= len(self.steps):
            self.diverged = True
            return None
        planned = self.steps[step]
        if planned.kind != kind or planned.targets[call] != target:
            self.diverged = True
            return None
        self.cursor = (step, call + 1) if call + 1 < len(planned.targets) else (step + 1, 0)
        return step

    def named_label(self, n: int) -> str:
        return f"{self.name}.{self.steps[self.named[n]].kind}"


def error_record(error: BaseException) -> dict:
    """What a refusal says, with the replay's thread names and nothing that changes from run to run
    (a deadlock's message carries how long the victim waited; its record does not need to)."""
    if isinstance(error, DeadlockVictim):
        deadlock = error.deadlock
        cycle = [
            {"thread": short_name(step["thread"]), "holds": step["holds"], "waits_for": step["waits_for"]}
            for step in deadlock["cycle"]
        ]
        return {
            "error": "deadlock",
            "victim": short_name(deadlock["victim"]),
            "broken_by": deadlock.get("broken_by"),
            "cycle": cycle,
        }
    if isinstance(error, GuardTimeout):
        return {"error": "self-deadlock" if error.self_deadlock else "lock-timeout", "detail": str(error)}
    if isinstance(error, InsufficientFunds):
        return {"error": "insufficient-funds", "detail": str(error)}
    return {"error": type(error).__name__, "detail": str(error)}


def short_name(thread: str | None) -> str | None:
    """`interleave-a` is `a`."""
    return None if thread is None else thread.removeprefix(THREAD_PREFIX)
