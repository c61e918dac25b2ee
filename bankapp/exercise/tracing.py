"""Every line of the trainee's file a step, and what each line reads and writes of the trainee's objects.

The controlled primitives (`explore.primitives`) make the trainee's `Lock`,
`Condition` and `Semaphore` steps; that is not enough for a guard built on
plain data, `while self.held: pass` then `self.held = True`, whose race is
between two lines. So `sys.settrace` pauses each explored thread at every
line of the trainee's file (a step named `a.line12`), and the attributes
the trainee's objects read and write during a line are what the step
touched: two lines conflict when one writes what the other reads or writes,
so the partial-order reduction keeps the orders that matter and skips the
rest. An attribute that holds a container (a list, a deque) counts as
written whenever it is read: what is done to it next is not seen. Module
globals a line assigns (`global`) count the same way.

A busy wait would loop for ever under a scheduler that may always pick the
spinner: a thread that comes back to a line `SPIN_LIMIT` times without a
step on a primitive in between (a spin), or `VISIT_LIMIT` times at all, is
stopped with `BusyWait`, naming the line.
"""

from __future__ import annotations

import dis
import linecache
import sys
from collections.abc import Callable
from types import CodeType, FrameType, ModuleType
from typing import Any

from ..explore import engine, primitives
from ..explore.primitives import Cell, _Controlled

#: Visits of one line by one thread with no primitive step between them before it is called a busy wait.
SPIN_LIMIT = 3
#: Visits of one line by one thread in one schedule, however it got there.
VISIT_LIMIT = 24
#: Values a read of an attribute cannot change through: only a write changes what they say.
PLAIN = (int, float, bool, str, bytes, tuple, frozenset, type(None), Cell, _Controlled)


class BusyWait(BaseException):
    """A thread came back to a line too often: a busy wait (a `BaseException`, so the trainee's `except
    Exception` cannot swallow it)."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


class Tracer:
    """The trainee's module traced: its lines steps, its classes' attribute accesses touches."""

    def __init__(self, module: ModuleType, path: str):
        self.module = module
        self.filename = path
        self.classes = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
        self.globals_by_line = _globals_by_line(module)
        self._labels: dict[int, tuple[str, Any]] = {}
        self._made: dict[str, int] = {}
        self._visits: dict[tuple[int, str, int], tuple[int, int, int]] = {}
        self.observer: Callable[[], None] | None = None  # called at every line step (the fair lock's waiters)
        self.shared = _shared_primitives(module, self.classes)
        for cls in self.classes:
            self._instrument(cls)

    def reset(self) -> None:
        """Before each schedule's setup: objects numbered from 1 again, visits forgotten."""
        self._labels.clear()
        self._made.clear()
        self._visits.clear()
        for owner, name, make in self.shared:
            setattr(owner, name, make())

    def text(self, line: int) -> str:
        return linecache.getline(self.filename, line).strip()

    # the lines

    def traced(self, body: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """`body` with the trainee's lines as steps while it runs (on its explored thread)."""

        def run(state: Any) -> Any:
            sys.settrace(self._call)
            try:
                return body(state)
            finally:
                sys.settrace(None)

        return run

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_filename == self.filename:
            return self._line
        return None

    def _line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.step(frame.f_lineno)
        return self._line

    def step(self, line: int) -> None:
        execution = engine.current()
        if execution is None:
            return
        runner = execution._runner()
        if runner is None:
            return
        self._count_visit(execution, runner.name, line)
        execution._enter(runner, f"line{line}", "")
        if self.observer is not None:
            self.observer()
        for touched in self.globals_by_line.get(line, ()):
            execution._touch(*touched)
        execution._say(runner, f"line {line}: {self.text(line)}")

    def _count_visit(self, execution: engine.Execution, thread: str, line: int) -> None:
        """Stop a thread that spins on `line` (see `SPIN_LIMIT`, `VISIT_LIMIT`)."""
        others = sum(1 for m in execution.moves if m.thread == thread and not m.label.startswith(f"{thread}.line"))
        key = (id(execution), thread, line)
        seen, spins, last = self._visits.get(key, (0, 0, -1))
        spins = spins + 1 if others == last else 0
        self._visits[key] = (seen + 1, spins, others)
        if spins >= SPIN_LIMIT or seen + 1 > VISIT_LIMIT:
            how = (
                f"{spins + 1} times in a row with no lock, condition or semaphore step between"
                if spins >= SPIN_LIMIT
                else f"{seen + 1} times"
            )
            raise BusyWait(line, f"thread {thread} came back to line {line} {how}: a busy wait (`{self.text(line)}`)")

    # the attributes

    def label(self, obj: Any) -> str:
        """A name for a trainee object, the same in every schedule: its class, who made it, and its number."""
        known = self._labels.get(id(obj))
        if known is not None and known[1] is obj:
            return known[0]
        runner = _runner_name()
        self._made[runner] = self._made.get(runner, 0) + 1
        name = f"{type(obj).__name__} #{runner}{self._made[runner]}"
        self._labels[id(obj)] = (name, obj)
        return name

    def _seen(self, obj: Any, attr: str, value: Any, mode: str) -> None:
        execution = engine.current()
        if execution is None or attr.startswith("__"):
            if mode == "w":
                self.label(obj)  # numbered as made, in the setup too
            return
        if mode == "r" and callable(value) and not isinstance(value, _Controlled):
            return  # a method looked up: nothing shared is read
        written = mode == "w" or (not isinstance(value, PLAIN) and type(value) not in self.classes)
        name = f"{self.label(obj)}.{attr}"
        execution._touch(("data", name), "w" if written else "r")
        runner = execution._runner()
        if runner is not None and isinstance(value, (int, float, bool, str, type(None))):
            execution._say(runner, f"{'sets' if mode == 'w' else 'sees'} {attr} = {value!r}")

    def _instrument(self, cls: type) -> None:
        get: Any = cls.__getattribute__
        put: Any = cls.__setattr__
        seen = self._seen

        def __getattribute__(obj: Any, attr: str) -> Any:
            value = get(obj, attr)
            seen(obj, attr, value, "r")
            return value

        def __setattr__(obj: Any, attr: str, value: Any) -> None:
            put(obj, attr, value)
            seen(obj, attr, value, "w")

        setattr(cls, "__getattribute__", __getattribute__)  # noqa: B010 - the class is patched, as it is
        setattr(cls, "__setattr__", __setattr__)  # noqa: B010


def _shared_primitives(module: ModuleType, classes: list[type]) -> list[tuple[Any, str, Callable[[], Any]]]:
    """Real primitives made at import (a module's or a class's `_lock = threading.Lock()`), before the controlled
    ones were swapped in: each replaced by a fresh controlled one of its kind before every schedule."""
    import threading

    kinds: list[tuple[type, Callable[[Any], Callable[[], Any]]]] = [
        (type(threading.Lock()), lambda v: primitives.Lock),
        (type(threading.RLock()), lambda v: primitives.RLock),
        (threading.Condition, lambda v: primitives.Condition),
        (threading.BoundedSemaphore, lambda v: lambda: primitives.BoundedSemaphore(v._initial_value)),
        (threading.Semaphore, lambda v: lambda: primitives.Semaphore(v._value)),
        (threading.Event, lambda v: primitives.Event),
    ]
    found = []
    for owner in (module, *classes):
        for name, value in list(vars(owner).items()):
            maker = next((make(value) for kind, make in kinds if type(value) is kind), None)
            if maker is not None:
                found.append((owner, name, maker))
    return found


def _runner_name() -> str:
    execution = engine.current()
    runner = execution._by_ident.get(_ident()) if execution is not None else None
    return runner.name if runner is not None else "s"  # s: made in the setup


def _ident() -> int:
    import threading

    return threading.get_ident()


def _globals_by_line(module: ModuleType) -> dict[int, set[tuple[tuple[str, str], str]]]:
    """For each line, the module globals it touches that can change: those some line assigns (`global x`),
    read or written, and containers held in a global, counted as written."""
    found: list[tuple[int, str, str]] = []

    def walk(code: CodeType) -> None:
        line = code.co_firstlineno
        for instruction in dis.get_instructions(code):
            if instruction.starts_line is not None:
                line = instruction.starts_line
            if instruction.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"):
                found.append((line, str(instruction.argval), instruction.opname))
        for const in code.co_consts:
            if isinstance(const, CodeType):
                walk(const)

    for value in vars(module).values():
        code = getattr(value, "__code__", None)
        if isinstance(code, CodeType) and code.co_filename == getattr(module, "__file__", None):
            walk(code)
        if isinstance(value, type) and value.__module__ == module.__name__:
            for member in vars(value).values():
                inner = getattr(member, "__code__", None) or getattr(
                    getattr(member, "__func__", None), "__code__", None
                )
                if isinstance(inner, CodeType):
                    walk(inner)
    assigned = {name for _, name, op in found if op != "LOAD_GLOBAL"}
    by_line: dict[int, set[tuple[tuple[str, str], str]]] = {}
    for line, name, op in found:
        container = not isinstance(vars(module).get(name), PLAIN) and not callable(vars(module).get(name))
        if name in assigned or container:
            mode = "w" if op != "LOAD_GLOBAL" or container else "r"
            by_line.setdefault(line, set()).add((("data", f"global {name}"), mode))
    return by_line
