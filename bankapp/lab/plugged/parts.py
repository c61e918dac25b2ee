"""A trainee's code in the lab's place: a guard per account, a checkout's admission, a transfer's lock order.

`Plugged` holds what `bankapp serve --exercise NAME=FILE` loaded (see
`loader`) and hands the lab its parts, each chosen by the value `exercise`
of the setting it stands in for: `deposit_guard exercise` (deposit-guard,
reentrant-guard, fair-lock), `checkout_guard exercise` (counting-semaphore,
admission: made with `capacity` permits) and `transfer_policy exercise`
(transfer-order). Without a plugged file that value is refused by name.

The lab trusts the trainee's code for nothing it can check itself:

- a trainee's guard never counts as excluding (`Guard.excludes` False), so
  the deposit takes no account lock of its own around it: a guard that lets
  two deposits in shows its lost updates, as `unsafe` does;
- every call goes through `TraineeCalls.call`: whatever it raises (an
  exception, `sys.exit`) becomes `TraineeCodeFailed`, a 503 naming the
  trainee's file and line, and the worker goes on; an acquire that answers
  neither True nor False is refused the same way;
- a failed acquire (a rejection) that comes back later than its timeout
  plus `PROMPT_MS` is counted as late (`rejections prompt`): `/stats`
  shows them under `exercise`, beside the calls and failures;
- each acquire takes a ticket as it arrives: a grant while an earlier
  ticket still waits is counted as an overtake (`fair-lock`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from threading import get_ident
from typing import Any

from ...settings import Config, ConfigHolder, SettingsError, apply_patch, check_patch
from ..guards import Guard, GuardSet
from ..transfers import POLICIES, Move
from ..transfers.policies import Policy
from .loader import EXERCISES, Exercise, PlugError, describe, load, where

#: How far past its timeout an acquire may come back and still count as prompt.
PROMPT_MS = 50


class TraineeCodeFailed(Exception):
    """The trainee's code raised (or answered nonsense) while serving a request; nothing else is to blame."""

    def __init__(self, exercise: str, path: Path, line: int | None, call: str, what: str):
        self.exercise = exercise
        self.file = str(path)
        self.line = line
        self.call = call
        at = f"{path}:{line}" if line else str(path)
        super().__init__(f"the trainee's code for {exercise} failed in {call} at {at}: {what}")


class TraineeCalls:
    """Every call into one trainee's file, converted and counted."""

    def __init__(self, exercise: Exercise, path: Path, implementation: Any):
        self.exercise = exercise
        self.path = path
        self.implementation = implementation
        self._lock = threading.Lock()
        self.calls = 0
        self.inside = 0  # calls that have not returned yet: after the load stops, a hang
        self.failures = 0
        self.rejections = 0
        self.grants = 0
        self.overtakes = 0  # grants to a thread while one that came earlier still waited: not in arrival order
        self.late = 0
        self.worst_overrun_ms = 0.0
        self.last_failure: str | None = None

    def call(self, name: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`function(*args, **kwargs)`, or `TraineeCodeFailed` for whatever it raised."""
        with self._lock:
            self.calls += 1
            self.inside += 1
        try:
            return function(*args, **kwargs)
        except BaseException as error:
            raise self.failed(name, describe(error), where(error, self.path)) from None
        finally:
            with self._lock:
                self.inside -= 1

    def failed(self, call: str, what: str, line: int | None = None) -> TraineeCodeFailed:
        error = TraineeCodeFailed(self.exercise.name, self.path, line, call, what)
        with self._lock:
            self.failures += 1
            self.last_failure = str(error)
        return error

    def granted(self, overtook: bool) -> None:
        with self._lock:
            self.grants += 1
            self.overtakes += overtook

    def rejected(self, timeout: float | None, began: float) -> None:
        """Count a failed acquire, and whether it came back more than `PROMPT_MS` after its timeout."""
        overrun_ms = 0.0 if timeout is None else (time.monotonic() - began - timeout) * 1000
        with self._lock:
            self.rejections += 1
            if overrun_ms > PROMPT_MS:
                self.late += 1
                self.worst_overrun_ms = max(self.worst_overrun_ms, round(overrun_ms, 1))

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "exercise": self.exercise.name,
                "file": str(self.path),
                "calls": self.calls,
                "inside": self.inside,
                "failures": self.failures,
                "last_failure": self.last_failure,
                "grants": self.grants,
                "overtakes": self.overtakes,
                "rejections": self.rejections,
                "late_rejections": self.late,
                "worst_overrun_ms": self.worst_overrun_ms,
                "prompt_ms": PROMPT_MS,
            }


class TraineeGuard(Guard):
    """A `Guard` of the lab whose acquire and release are the trainee's.

    The holders are still booked here (a release by a thread that holds
    nothing is the lab's `RuntimeError`, never passed on), and a nested
    acquire that times out is told as a self-deadlock: whether the
    trainee's guard is re-entrant is for the judge to find out.
    """

    name = "exercise"
    reentrant = False

    def __init__(self, calls: TraineeCalls, label: str = "", permits: int = 1):
        super().__init__(label, permits)
        self.permits = permits
        self.calls = calls
        made = (permits,) if calls.exercise.make_args else ()  # a semaphore or an admission: made with its permits
        self._trainee = calls.call(
            f"{calls.exercise.defines}({', '.join(map(str, made))})", calls.implementation, *made
        )
        enter, leave = ("try_enter", "leave") if calls.exercise.name == "admission" else ("acquire", "release")
        self._enter_name, self._enter = enter, getattr(self._trainee, enter)
        self._leave_name, self._leave = leave, getattr(self._trainee, leave)
        self._arrivals_lock = threading.Lock()
        self._tickets = itertools.count()
        self._arrived: set[int] = set()

    @property
    def excludes(self) -> bool:
        return False  # never trusted to: see the module's docstring

    def acquire(self, timeout: float | None = None) -> bool:
        began = time.monotonic()
        with self._arrivals_lock:  # a ticket in arrival order: was anyone who came earlier still waiting?
            ticket = next(self._tickets)
            self._arrived.add(ticket)
        try:
            got = self.calls.call(f"{self._enter_name}(timeout={timeout!r})", self._enter, timeout=timeout)
        finally:
            with self._arrivals_lock:
                self._arrived.discard(ticket)
                overtook = bool(self._arrived) and min(self._arrived) < ticket
        if got is True:
            self.calls.granted(overtook)
        if got is not True and got is not False:
            raise self.calls.failed(f"{self._enter_name}(timeout={timeout!r})", f"answered {got!r}, not True or False")
        if not got:
            self.calls.rejected(timeout, began)
        else:
            me = get_ident()
            self._holders[me] = self._holders.get(me, 0) + 1
        return got

    def release(self) -> None:
        me = get_ident()
        count = self._holders.get(me, 0)
        if count <= 0:
            raise RuntimeError(f"exercise guard {self.label!r}: released by a thread that does not hold it")
        if count == 1:
            del self._holders[me]
        else:
            self._holders[me] = count - 1
        self.calls.call(f"{self._leave_name}()", self._leave)


class PluggedGuards(GuardSet):
    """The lab's guards, and `exercise` ones made from the trainee's class: one per account, or the checkout's."""

    def __init__(self, plugged: Plugged):
        super().__init__()
        self.plugged = plugged
        self._trainee: dict[tuple[int, str], Guard] = {}

    def get(self, kind: str, key: str, permits: int = 1) -> Guard:
        if kind != "exercise":
            return super().get(kind, key, permits)
        guard = self._trainee.get((permits, key))
        if guard is None:
            with self._lock:
                guard = self._trainee.get((permits, key))
                if guard is None:
                    part = "checkout" if key == "checkout" else "deposit"
                    guard = self._trainee[(permits, key)] = TraineeGuard(self.plugged.calls(part), key, permits)
        return guard

    def all(self) -> list[Guard]:
        with self._lock:
            return [*self._guards.values(), *self._trainee.values()]


class TraineeOrderPolicy(Policy):
    """Lock both accounts in the order the trainee's `lock_order` gives, then move (as `ordered` does)."""

    name = "exercise"

    def __init__(self, calls: TraineeCalls):
        self.calls = calls

    def move(self, m: Move) -> None:
        call = f"lock_order({m.source!r}, {m.target!r})"
        order = self.calls.call(call, self.calls.implementation, m.source, m.target)
        if not isinstance(order, tuple | list) or sorted(order) != sorted((m.source, m.target)):
            raise self.calls.failed(call, f"answered {order!r}, not the two accounts in some order")
        for account in order:
            m.lock(account)
        m.debit()
        m.window()
        m.credit()


class Plugged:
    """The trainee's files this lab runs, by part: `deposit`, `checkout`, `transfer` (at most one each)."""

    def __init__(self, files: Mapping[str, Path] | None = None):
        self._calls: dict[str, TraineeCalls] = {}
        for name, path in (files or {}).items():
            self.plug(name, Path(path))

    def plug(self, exercise_name: str, path: Path) -> None:
        """Load `path` for the exercise (`loader.PlugError` if it cannot serve); one file per part."""
        implementation = load(exercise_name, path)
        exercise = EXERCISES[exercise_name]
        taken = self._calls.get(exercise.part)
        if taken is not None:
            raise PlugError(
                f"{exercise_name} and {taken.exercise.name} both stand in for the {exercise.part} "
                f"({exercise.setting}); plug in one of them"
            )
        self._calls[exercise.part] = TraineeCalls(exercise, path.resolve(), implementation)

    def calls(self, part: str) -> TraineeCalls:
        found = self._calls.get(part)
        if found is None:  # `check` refuses the setting first; this is for a lab built around it
            raise SettingsError(unplugged(part))
        return found

    def check(self, config: Config) -> None:
        """Refuse settings that choose `exercise` for a part no file was plugged into."""
        for part, setting in (
            ("deposit", "deposit_guard"),
            ("checkout", "checkout_guard"),
            ("transfer", "transfer_policy"),
        ):
            if getattr(config, setting) == "exercise" and part not in self._calls:
                raise SettingsError(
                    unplugged(part), [{"setting": setting, "message": unplugged(part), "type": "not_plugged"}]
                )

    def guards(self) -> PluggedGuards:
        return PluggedGuards(self)

    def policies(self) -> dict[str, Policy]:
        """The transfer policies: the lab's own, and `exercise` when a lock order was plugged."""
        found = self._calls.get("transfer")
        return {**POLICIES, **({"exercise": TraineeOrderPolicy(found)} if found else {})}

    def report(self) -> dict[str, Any]:
        """What `/stats` shows under `exercise`: per part, the file, its calls, failures and late rejections."""
        return {part: calls.report() for part, calls in self._calls.items()}

    def __bool__(self) -> bool:
        return bool(self._calls)


def unplugged(part: str) -> str:
    exercises = ", ".join(name for name, exercise in EXERCISES.items() if exercise.part == part)
    setting = {"deposit": "deposit_guard", "checkout": "checkout_guard", "transfer": "transfer_policy"}[part]
    return (
        f"{setting}: exercise runs a trainee's code, and none was plugged in for it; start the server with "
        f"bankapp serve --exercise NAME=FILE (NAME one of {exercises}), on loopback"
    )


class CheckedSettings(ConfigHolder):
    """The lab's settings, with every change checked against what is plugged in before it lands."""

    def __init__(self, config: Config, plugged: Plugged):
        plugged.check(config)
        super().__init__(config)
        self.plugged = plugged

    def patch(self, changes: dict[str, Any]) -> Config:
        changes = check_patch(changes)
        self.plugged.check(apply_patch(self.current, changes))  # refused before anything changes
        return super().patch(changes)
