"""The stepper: real threads that pause at each step and go in the order of a schedule.

Each thread of a replay (an `Actor`) runs a real domain operation, a
deposit or a transfer, through a store and locks that call the stepper
before every read, write, acquire and release (see `stepping`). There the
thread waits until the schedule releases that step, does it for real, and
goes on to its next step, where it waits again.

One thread moves at a time, so the same schedule prints the same steps in
the same order every run. After each step the conductor waits until every
thread has come to rest: paused at a step, finished, or *stuck*, waiting
for a lock that someone else holds. A thread the lock makes wait is shown
waiting, and the schedule goes on without it: its later steps wait for it,
and the others' steps run. When the holder lets go, the waiting thread is
handed the turn before the schedule goes on. So a guard reorders a
schedule into the only order it allows.

Three things threading leaves to chance are fixed here, and only here:

- who gets a guard next: `threading.Lock` wakes any waiter. The stepper
  queues its threads in the order they came, as the account locks (and
  PostgreSQL's lock manager) do;
- who wakes first after a release: the releasing thread waits until the
  waiter has taken the lock, then goes on alone; the waiter goes on when
  the releaser rests;
- who is the deadlock victim: in the service every waiter checks for a
  cycle after `deadlock_check_ms` and whichever looks first gives up. In a
  replay only the wait that closes the cycle checks, so the victim is the
  thread whose wait closed it, every run (see `stepping.SteppingLockTable`).

Everything else is the lab's own: the locks, their timeouts, the deadlock
detector, the rollbacks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .actors import BLOCKED, DONE, PAUSED, RUNNING, THREAD_PREFIX, WOKEN, Actor, Primitive, error_record
from .schedule import Entry

#: How often a waiter looks again at locks that do not tell the stepper when they change.
POLL_S = 0.002
#: Longest a thread may run between two steps (beyond the race window) before the replay gives up on it.
RUN_LIMIT_S = 10.0


class ReplayError(RuntimeError):
    """The replay lost control of a thread; it stopped, and says which."""


class Stepper:
    """Runs actors step by step in the order of a schedule, and records what each step saw."""

    def __init__(self, actors: list[Actor], settle_limit: float, stuck_limit: float, unstick: Callable[[], list]):
        self.actors = {actor.name: actor for actor in actors}
        self.settle_limit = settle_limit
        self.stuck_limit = stuck_limit
        self.unstick = unstick  # the operator's way out, for a schedule nobody can finish
        self.events: list[dict] = []
        self.ran: list[str] = []
        self._changed = threading.Condition(threading.Lock())
        self._turn: Actor | None = None
        self._queues: dict[tuple, list[Actor]] = {}
        self._by_ident: dict[int, Actor] = {}
        self._aborted: str | None = None

    # what the stepping store and locks call, from the actors' threads

    def access(self, kind: str, target: str, action: Callable[[], Any], value: Any = None) -> Any:
        """A read or a write: pause if the schedule says so, do it, record what it saw."""
        actor = self._me()
        if actor is None:
            return action()
        step = self._enter(actor, kind, target)
        result = action()
        self._note(actor, kind, target=target, value=result if kind == "read" else value)
        self._completed(actor, step)
        return result

    def acquire(self, primitive: Primitive, timeout: float | None) -> bool:
        """Take `primitive`, or wait for it as the lock itself would (bounded by `timeout`), shown waiting."""
        actor = self._me()
        if actor is None:
            return primitive.wait(timeout)
        step = self._enter(actor, "acquire", primitive.label)
        if primitive.try_now():
            actor.held[primitive.key] += 1
            self._note(actor, "took", target=primitive.label, holds=actor.held[primitive.key])
            self._completed(actor, step)
            return True
        holders = self._names(primitive)
        if timeout is not None and timeout <= 0:
            self._note(actor, "refused", target=primitive.label, holders=holders)
            actor.diverged = True
            return False
        self._note(actor, "blocks", target=primitive.label, holders=holders)
        try:
            got = self._wait(actor, primitive, timeout)
        except BaseException as error:
            actor.diverged = True
            self._note(actor, "gave up", target=primitive.label, **error_record(error))
            raise
        if not got:
            actor.diverged = True
            self._note(actor, "timed out", target=primitive.label, timeout_ms=_ms(timeout))
            return False
        actor.held[primitive.key] += 1
        self._note(actor, "took", target=primitive.label, holds=actor.held[primitive.key], waited=True)
        self._completed(actor, step)
        return True

    def release(self, primitive: Primitive) -> None:
        """Let go of `primitive`; a thread it wakes takes it before this one goes on."""
        actor = self._me()
        if actor is None:
            primitive.release()
            return
        step = self._enter(actor, "release", primitive.label)
        actor.held[primitive.key] -= 1
        self._note(actor, "released", target=primitive.label)
        primitive.release()
        self._completed(actor, step)
        self._settle_waiters(primitive)

    # the conductor, on the caller's thread

    def run(self, entries: list[Entry]) -> None:
        """Start the actors one by one, then release the entries in order, as far as the locks allow."""
        for actor in self.actors.values():
            self._start(actor)
        pending = list(entries)
        while True:
            self._settle()
            with self._changed:
                for actor in self.actors.values():
                    left = [e for e in pending if e.thread == actor.name]
                    if left and actor.state == DONE:
                        pending = [e for e in pending if e.thread != actor.name]
                        steps = [e.label for e in left]
                        self.events.append({"thread": actor.name, "step": None, "event": "not run", "steps": steps})
                woken = [actor for actor in self.actors.values() if actor.state == WOKEN]
                if woken:
                    self._give_turn(woken[0])
                    continue
                entry = next((e for e in pending if self._ready(self.actors[e.thread], e)), None)
                if entry is not None:
                    pending.remove(entry)
                    actor = self.actors[entry.thread]
                    actor.go += 1
                    actor.label = entry.label
                    self.events.append({"thread": actor.name, "step": entry.label, "event": "step"})
                    self._give_turn(actor)
                    continue
                if all(actor.state == DONE for actor in self.actors.values()):
                    return
            self._wait_for_the_stuck()

    def abort(self, reason: str) -> None:
        """Stop every actor at its next look (a replay that failed must not leave threads waiting for turns)."""
        with self._changed:
            self._aborted = reason
            self._changed.notify_all()

    def _start(self, actor: Actor) -> None:
        thread = threading.Thread(target=self._body, args=(actor,), name=THREAD_PREFIX + actor.name, daemon=True)
        actor.thread = thread
        with self._changed:
            actor.state = RUNNING
            self._turn = actor
        thread.start()
        self._settle()

    def _body(self, actor: Actor) -> None:
        actor.ident = threading.get_ident()
        with self._changed:
            self._by_ident[actor.ident] = actor
        try:
            actor.result = actor.operation()
        except BaseException as error:
            actor.error = error
        finally:
            with self._changed:
                done = {"thread": actor.name, "step": actor.label, "event": "done"}
                if actor.error is not None:
                    done["refused"] = error_record(actor.error)["error"]
                self.events.append(done)
                actor.state = DONE
                if self._turn is actor:
                    self._turn = None
                self._changed.notify_all()

    def _me(self) -> Actor | None:
        return self._by_ident.get(threading.get_ident())

    def _ready(self, actor: Actor, entry: Entry) -> bool:
        return actor.state == PAUSED and actor.at == entry.index

    def _give_turn(self, actor: Actor) -> None:
        """Under `_changed`: let `actor` go on until it rests again."""
        if actor.state != WOKEN:
            actor.state = RUNNING
        self._turn = actor
        self._changed.notify_all()

    def _enter(self, actor: Actor, kind: str, target: str) -> int | None:
        """Before a call: which planned step it is, and, at the first call of a step, the pause the schedule sets."""
        with self._changed:
            step = actor.match(kind, target)
            if step is None:
                return None
            owner = actor.owner[step]
            actor.label = actor.named_label(owner)
            if actor.go <= owner:
                actor.state, actor.at = PAUSED, owner
                self._turn = None
                self._changed.notify_all()
                self._wait_turn(actor, lambda: actor.go > owner)
                actor.label = actor.named_label(owner)
            return step

    def _completed(self, actor: Actor, step: int | None) -> None:
        """After a call: a named step whose last call this was has run."""
        if step is None or actor.cursor != (step + 1, 0):
            return
        with self._changed:
            if step in actor.named:
                self.ran.append(actor.named_label(actor.named.index(step)))

    def _wait_turn(self, actor: Actor, also: Callable[[], bool] = lambda: True) -> None:
        """Under `_changed`: wait until the conductor hands `actor` the turn."""
        self._changed.wait_for(lambda: self._aborted is not None or (self._turn is actor and also()))
        if self._aborted is not None:
            raise ReplayError(self._aborted)
        actor.state = RUNNING

    def _wait(self, actor: Actor, primitive: Primitive, timeout: float | None) -> bool:
        """Block for real, queued in arrival order; rest as woken until the turn comes back."""
        deadline = None if timeout is None else time.monotonic() + timeout
        queue = self._queues.setdefault(primitive.key, [])
        with self._changed:
            actor.state, actor.blocked_on = BLOCKED, primitive
            queue.append(actor)
            self._turn = None
            self._changed.notify_all()
        try:
            if not primitive.fair:
                with self._changed:
                    first = self._changed.wait_for(
                        lambda: queue[0] is actor or self._aborted is not None, _left(deadline)
                    )
                if self._aborted is not None:
                    raise ReplayError(self._aborted)
                if not first:
                    return False
            return primitive.wait(_left(deadline))
        finally:
            with self._changed:
                queue.remove(actor)
                actor.state, actor.blocked_on = WOKEN, None
                self._changed.notify_all()
                self._wait_turn(actor)

    # resting

    def _stuck(self, actor: Actor) -> bool:
        """A blocked actor that will not move by itself: its lock is taken, and not handed to it."""
        primitive = actor.blocked_on
        if actor.state != BLOCKED or primitive is None:
            return False
        holders = primitive.holders()
        granted = actor.ident is not None and holders.get(actor.ident, 0) > actor.held[primitive.key]
        return not granted and sum(holders.values()) >= primitive.permits

    def _resting(self) -> bool:
        """Under `_changed`: nobody runs, and every blocked actor is stuck."""
        return self._turn is None and all(
            actor.state in (PAUSED, WOKEN, DONE) or self._stuck(actor) for actor in self.actors.values()
        )

    def _settle(self) -> None:
        with self._changed:
            if not self._until(self._resting, self.settle_limit):
                running = ", ".join(a.name for a in self.actors.values() if a.state in (RUNNING, BLOCKED))
                raise ReplayError(f"thread {running} did not come to rest within {self.settle_limit:g} s")

    def _until(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Under `_changed`: wait until `predicate()` holds, looking at every change and every `POLL_S`
        (a lock handed over tells nobody), at most `seconds`."""
        deadline = time.monotonic() + seconds
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.wait(min(POLL_S, left))
        return True

    def _settle_waiters(self, primitive: Primitive) -> None:
        """After a release: wait until whoever waited for `primitive` has taken it (or waits on, stuck)."""
        with self._changed:
            waking = [a for a in self.actors.values() if a.blocked_on is not None and a.blocked_on.key == primitive.key]
            if not self._until(lambda: all(a.state != BLOCKED or self._stuck(a) for a in waking), self.settle_limit):
                raise ReplayError(f"nobody took the {primitive.label} within {self.settle_limit:g} s")

    def _wait_for_the_stuck(self) -> None:
        """Every thread left is stuck: wait for a lock timeout or the deadlock detector to end it.

        If nothing moves within `stuck_limit` (a deadlock nobody may give up,
        with `lock_timeout_ms` none), the replay breaks it as the operator
        does (`POST /admin/break-deadlocks`), and says so.
        """
        if self._moved_within(self.stuck_limit):
            return
        with self._changed:
            stuck = [
                {"thread": a.name, "waits_for": a.blocked_on.label, "holders": self._names(a.blocked_on)}
                for a in self.actors.values()
                if a.blocked_on is not None
            ]
            self.events.append({"event": "stuck", "stuck": stuck})
        broken = self.unstick()
        with self._changed:
            self.events.append({"event": "broken", "waited_ms": _ms(self.stuck_limit), "deadlocks": len(broken)})
        if not self._moved_within(self.stuck_limit):
            raise ReplayError("the threads are still stuck after the replay broke their deadlocks")

    def _moved_within(self, seconds: float) -> bool:
        """Whether some thread moved (woke, or is about to) within `seconds`."""
        with self._changed:
            return self._until(
                lambda: any(
                    a.state in (RUNNING, WOKEN) or (a.state == BLOCKED and not self._stuck(a))
                    for a in self.actors.values()
                ),
                seconds,
            )

    # what the output says

    def _names(self, primitive: Primitive) -> list[str]:
        """Who holds `primitive`, by actor name (a thread outside the replay is `another thread`)."""
        names = []
        for ident, count in sorted(primitive.holders().items(), key=lambda item: self._order(item[0])):
            actor = self._by_ident.get(ident)
            names += [actor.name if actor else "another thread"] * count
        return names

    def _order(self, ident: int) -> str:
        actor = self._by_ident.get(ident)
        return actor.name if actor else "~"

    def _note(self, actor: Actor, event: str, **details: Any) -> None:
        with self._changed:
            record: dict[str, Any] = {"thread": actor.name, "step": actor.label, "event": event}
            if actor.diverged and event in ("read", "write", "released", "took"):
                record["after_plan"] = True
            self.events.append({**record, **details})


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
