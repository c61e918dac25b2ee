"""One schedule, run for real: threads that take turns at their steps, one at a time, in the order chosen.

`Execution` is the conductor the lab's stepping store and locks call (see
`bankapp.interleave.stepping`), and the one the controlled primitives of
`primitives` call. Each thread of the scenario is a real thread; only one
runs at a time, handed the turn as a baton: the thread gives it back when
it comes to its next step (read, write, acquire, release, wait, notify),
when it has to wait for a lock, or when it ends. So every schedule is a
replay, and the code between two steps (the lab's bookkeeping, its
counters, forensics and ledger) runs atomically.

The same rules as `bankapp interleave`, so that every schedule explored
replays there:

- a thread's steps are those a rehearsal alone found (`plan`), each
  acquire and release named; a thread that leaves them (refused, rolled
  back) runs the rest without pausing;
- a thread that must wait for a lock is *blocked*; the release that frees
  it hands it the lock at once, in arrival order, and the woken thread
  goes on as soon as the releaser rests, before the next choice;
- all threads blocked is a deadlock, seen there and then (no detector, no
  timeout decides it); one that waits for what it holds itself is a
  self-deadlock. Only a wait that is a mere try (`patient` False: a
  backoff's brief try, a trainee's `acquire(timeout=...)`) may time out,
  and only when nothing else can move, at the virtual time it would.

`choose(enabled)` picks who goes next at each choice point (see `dpor`);
each choice and what it touched is a `Move`.
"""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..interleave.actors import Actor, Primitive
from . import clock
from .moves import Aborted, Hang, Move

PAUSED, RUNNING, BLOCKED, TRYING, WOKEN, DONE = "paused", "running", "blocked", "trying", "woken", "done"
#: Longest a thread may run between two steps, in real seconds, before the exploration calls it a hang.
RUN_LIMIT_S = 10.0
#: Most calls one thread may make in one execution: a loop that never ends stops here.
CALL_LIMIT = 10_000
#: Most choices in one execution.
MOVE_LIMIT = 2_000


#: thread ident -> the execution it runs in: how a controlled primitive finds its scheduler
_running: dict[int, Execution] = {}


def current() -> Execution | None:
    """The execution the calling thread runs in, if it is an explored thread."""
    return _running.get(threading.get_ident())


class Turn:
    """A party in the baton passing (the controller or one thread): releasing `go` hands it the turn."""

    def __init__(self) -> None:
        self.go = _thread.allocate_lock()
        self.go.acquire()


@dataclass(eq=False)
class Runner(Actor):
    """An `Actor` of `interleave` with what the explorer needs besides: its turn, what it waits for and how."""

    turn: Turn = field(default_factory=Turn)
    planned: bool = True  # False: no rehearsal, every call is a step of its own (code outside the lab)
    patient: bool = True
    deadline: float | None = None
    timed_out: bool = False
    calls: int = 0
    aborted: bool = False  # unwound when its execution ended (it was stuck, or the run was cut short)


class Execution:
    """Runs `runners` (their `operation` set) under `choose`, one thread at a time; `moves` is what happened."""

    def __init__(self, runners: list[Runner], choose: Callable[[list[str], list[Move]], str | None], seed: int = 0):
        self.runners = {runner.name: runner for runner in runners}
        self.choose = choose
        self.moves: list[Move] = []
        self.end: str | None = None  # None: all done; "deadlock", "self-deadlock", "redundant"
        self.stuck: list[dict] = []  # at a deadlock: who waits for what, held by whom
        self.clock = clock.VirtualClock(seed)
        self._me = Turn()
        self._give_back = self._me  # whom a thread hands the turn back to when it rests
        self._by_ident: dict[int, Runner] = {}
        self._queues: dict[tuple, list[Runner]] = {}
        self._move: Move | None = None
        self._aborting = False
        self._hang: Hang | None = None
        self.lab: Any = None  # what the caller built for this run, to judge it by

    # the controller

    def run(self) -> None:
        """Start the threads one by one (each runs to its first step), then move them as `choose` says."""
        for runner in self.runners.values():
            self._move = Move(runner.name, "start")
            self._start(runner)
        self._move = None
        try:
            while True:
                self._wake_all()
                enabled = [r.name for r in self.runners.values() if r.state == PAUSED]
                if not enabled:
                    if all(r.state == DONE for r in self.runners.values()):
                        return
                    if self._time_out_a_try():
                        continue
                    self._deadlock()
                    return
                if len(self.moves) >= MOVE_LIMIT:
                    last = " ".join(move.label for move in self.moves[-6:])
                    self._hang = Hang(
                        f"a schedule took {MOVE_LIMIT} steps without ending (a loop that never ends?); its last "
                        f"steps: {last}",
                        last,
                    )
                    raise self._hang
                name = self.choose(enabled, self.moves)
                if name is None:
                    self.end = "redundant"
                    return
                runner = self.runners[name]
                runner.go += 1
                self._move = Move(name, runner.named_label(runner.at) if runner.planned else runner.label)
                self.moves.append(self._move)
                self._resume(runner)
        finally:
            self._abort_all()
            clock.uninstall_for(self._by_ident)
            for ident in self._by_ident:
                _running.pop(ident, None)

    def _start(self, runner: Runner) -> None:
        runner.state = RUNNING
        self._give_back = self._me
        thread = threading.Thread(target=self._body, args=(runner,), name=f"explore-{runner.name}", daemon=True)
        runner.thread = thread
        thread.start()
        self._wait_back(runner)

    def _resume(self, runner: Runner) -> None:
        runner.state = RUNNING
        self._give_back = self._me
        runner.turn.go.release()
        self._wait_back(runner)

    def _wait_back(self, runner: Runner) -> None:
        if not self._me.go.acquire(timeout=RUN_LIMIT_S):
            where = f"thread {runner.name} at {runner.label or 'its start'}"
            self._hang = Hang(f"{where} did not come back to a step within {RUN_LIMIT_S:g} s", where)
            raise self._hang
        if self._hang is not None:
            raise self._hang

    def _wake_all(self) -> None:
        """Threads handed a lock go on, each until it rests, before the next choice (as `interleave` does)."""
        while True:
            woken = [r for r in self.runners.values() if r.state == WOKEN]
            if not woken:
                return
            if self._move is not None:
                self._move.also.add(woken[0].name)
            self._resume(woken[0])

    def _time_out_a_try(self) -> bool:
        """Nothing can move: the try that would run out first does, at its virtual time. False: none is a try."""
        tries = [r for r in self.runners.values() if r.state == BLOCKED and not r.patient and r.deadline is not None]
        if not tries:
            return False
        first = min(tries, key=lambda r: (r.deadline, r.name))
        deadline, blocked_on = first.deadline, first.blocked_on
        assert deadline is not None and blocked_on is not None, "a blocked try has a deadline and a primitive"
        self.clock.advance_to(deadline)
        self._queues[blocked_on.key].remove(first)
        first.timed_out = True
        first.state = WOKEN
        if self._move is not None:
            self._move.also.add(first.name)
        return True

    def _deadlock(self) -> None:
        """Every live thread waits: a deadlock, or a self-deadlock when one waits for what it holds itself."""
        own = False
        for runner in self.runners.values():
            if runner.state != BLOCKED:
                continue
            blocked_on = runner.blocked_on
            assert blocked_on is not None, "a blocked runner waits for a primitive"
            holders = blocked_on.holders()
            own = own or (runner.ident is not None and holders.get(runner.ident, 0) > 0)
            self.stuck.append(
                {
                    "thread": runner.name,
                    "step": runner.label,
                    "waits_for": blocked_on.label,
                    "held_by": sorted(self._name(ident) for ident in holders),
                }
            )
        self.end = "self-deadlock" if own else "deadlock"

    def _abort_all(self) -> None:
        """Unwind every thread still alive; each raises `Aborted` at its next look."""
        self._aborting = True
        for runner in self.runners.values():
            if runner.state not in (DONE, RUNNING) and runner.thread is not None:  # a running one cannot be stopped
                self._give_back = self._me
                runner.turn.go.release()
                self._me.go.acquire(timeout=RUN_LIMIT_S)

    def _name(self, ident: int) -> str:
        runner = self._by_ident.get(ident)
        return runner.name if runner else "another thread"

    # on the threads

    def _body(self, runner: Runner) -> None:
        runner.ident = threading.get_ident()
        self._by_ident[runner.ident] = runner
        _running[runner.ident] = self
        clock.install_for(runner.ident, self.clock)
        try:
            runner.result = runner.operation()
        except Aborted:
            runner.aborted = True
        except BaseException as error:
            runner.error = error
        finally:
            runner.state = DONE
            self._give_back.go.release()

    def _rest(self, runner: Runner) -> None:
        """Give the turn back (to the controller, or to the releaser that handed a try) and wait for it again."""
        self._give_back.go.release()
        runner.turn.go.acquire()
        if self._aborting:
            raise Aborted()

    def _runner(self) -> Runner | None:
        runner = self._by_ident.get(threading.get_ident())
        if runner is not None:
            if self._aborting:
                raise Aborted()
            runner.calls += 1
            if runner.calls > CALL_LIMIT:
                self._hang = Hang(
                    f"thread {runner.name} made more than {CALL_LIMIT} calls at {runner.label}: a loop that never "
                    "ends?",
                    f"thread {runner.name} at {runner.label}",
                )
                raise Aborted()
        return runner

    def _enter(self, runner: Runner, kind: str, target: str) -> None:
        """Before a call: at the first call of a step, pause until the schedule lets the thread do it."""
        if not runner.planned:
            runner.label = f"{runner.name}.{kind}"
            runner.state, runner.at = PAUSED, runner.go
            self._rest(runner)
            return
        step = runner.match(kind, target)
        if step is None:
            return
        owner = runner.owner[step]
        runner.label = runner.named_label(owner)
        if runner.go <= owner:
            runner.state, runner.at = PAUSED, owner
            self._rest(runner)

    def _touch(self, obj: tuple, mode: str) -> None:
        if self._move is not None:
            self._move.touched.add((obj, mode))

    def _say(self, runner: Runner, what: str) -> None:
        if self._move is not None:
            self._move.calls.append(f"{runner.name} {what}")

    # the conductor: what the stepping store and the primitives call

    def access(self, kind: str, target: str, action: Callable[[], Any], value: Any = None) -> Any:
        """A read or a write of shared data: a step."""
        runner = self._runner()
        if runner is None:
            return action()
        self._enter(runner, kind, target)
        self._touch(("data", target), "r" if kind == "read" else "w")
        result = action()
        self._say(runner, f"{kind}s {target}: {result if kind == 'read' else value}")
        return result

    def acquire(
        self, primitive: Primitive, timeout: float | None, patient: bool | None = None, kind: str = "acquire"
    ) -> bool:
        """Take `primitive`, or wait for it: blocked until a release hands it over (or, a try, it times out).

        `kind` names the step (`wait` for an event or a condition); an empty
        `kind` continues the step the thread is in (a condition's wait takes
        its lock back as part of it).
        """
        runner = self._runner()
        if runner is None:
            return primitive.wait(timeout)
        if kind:
            self._enter(runner, kind, primitive.label)
        self._touch(("lock", primitive.label), "w")
        if primitive.try_now():
            runner.held[primitive.key] += 1
            self._say(runner, f"takes the {primitive.label}")
            return True
        if timeout is not None and timeout <= 0:
            runner.diverged = True
            self._say(runner, f"is refused the {primitive.label}")
            return False
        self._say(runner, f"waits for the {primitive.label}")
        runner.patient = getattr(primitive, "patient", True) if patient is None else patient
        runner.timed_out = False
        runner.deadline = None if timeout is None else self.clock.now + timeout
        runner.state, runner.blocked_on = BLOCKED, primitive
        self._queues.setdefault(primitive.key, []).append(runner)
        while True:
            self._rest(runner)
            if runner.state == TRYING:  # a release hands it a try, on this thread, then the releaser goes on
                runner.state = WOKEN if primitive.try_now() else BLOCKED
                continue
            break  # resumed by the controller: woken with the lock, or timed out
        runner.blocked_on = None
        if runner.timed_out:
            runner.diverged = True
            self._say(runner, f"gives up waiting for the {primitive.label}")
            return False
        runner.held[primitive.key] += 1
        self._say(runner, f"takes the {primitive.label}")
        return True

    def release(self, primitive: Primitive, kind: str = "release") -> None:
        """Let go of `primitive`, and hand it to whoever waits for it, in arrival order (`kind` as in `acquire`)."""
        runner = self._runner()
        if runner is None:
            primitive.release()
            return
        if kind:
            self._enter(runner, kind, primitive.label)
        self._touch(("lock", primitive.label), "w")
        primitive.release()
        runner.held[primitive.key] -= 1
        self._say(runner, f"releases the {primitive.label}")
        self.hand_over(runner, primitive)

    def signal(self, primitive: Primitive, kind: str, action: Callable[[], Any]) -> Any:
        """A step that may let waiters of `primitive` in (an event's `set`, a condition's `notify`): `action`,
        then the waiters try, in arrival order."""
        runner = self._runner()
        if runner is None:
            return action()
        self._enter(runner, kind, primitive.label)
        self._touch(("lock", primitive.label), "w")
        result = action()
        self._say(runner, f"{kind}s the {primitive.label}")
        self.hand_over(runner, primitive)
        return result

    def hand_over(self, runner: Runner, primitive: Primitive) -> None:
        """The first waiters of `primitive` try it, each on its own thread, as long as it lets them in."""
        queue = self._queues.get(primitive.key, [])
        while queue:
            waiter = queue[0]
            waiter.state = TRYING
            back, self._give_back = self._give_back, runner.turn
            waiter.turn.go.release()
            runner.turn.go.acquire()
            self._give_back = back
            if self._aborting:
                raise Aborted()
            if waiter.state != WOKEN:
                return
            queue.pop(0)
