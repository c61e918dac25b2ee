"""A trainee's file, loaded and checked against its exercise's interface before anything runs it.

Each exercise asks for one name with one shape (`EXERCISES`): a class whose
instances guard an account, a class made with a number of permits, a
function of two account ids. `load(exercise, path)` executes the file as a
module of its own (compiled under its own path, so every traceback names
the trainee's file and line) and returns what it defines under that name.
A file that cannot serve is refused before any request meets it, with a
plain `PlugError`: a syntax error, an exception at import, a missing name,
a class where a function is due, a signature that cannot be called as the
lab will call it.

The file runs with this process's rights: only `bankapp serve --exercise`
(on loopback, at start-up) and the `exercise` command load one, never the
HTTP API.
"""

from __future__ import annotations

import inspect
import itertools
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class PlugError(ValueError):
    """A trainee's file that cannot be plugged in; `str()` says why, naming the file (and line, if one is to blame)."""


@dataclass(frozen=True)
class Exercise:
    """What one exercise asks for, and which part of the lab it stands in for.

    `part` is `deposit` (a guard per account, `deposit_guard exercise`),
    `checkout` (the checkout's admission, `checkout_guard exercise`, made
    with `capacity` permits) or `transfer` (the order a transfer takes its
    two locks, `transfer_policy exercise`). `calls` are the calls the lab
    makes, as (method, example keyword arguments): each must bind to the
    trainee's signature.
    """

    name: str
    defines: str
    kind: str  # "class" or "function"
    part: str
    interface: str
    make_args: tuple[Any, ...] = ()
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()

    @property
    def setting(self) -> str:
        return {"deposit": "deposit_guard", "checkout": "checkout_guard", "transfer": "transfer_policy"}[self.part]


GUARD_CALLS: tuple[tuple[str, dict[str, Any]], ...] = (("acquire", {}), ("acquire", {"timeout": 1.0}), ("release", {}))
GUARD = "`class Guard` with `acquire(self, timeout=None) -> bool` and `release(self) -> None`"

#: The exercises whose code the server can run in place of its own, by name (SPEC.md, Exercises).
EXERCISES = {
    exercise.name: exercise
    for exercise in (
        Exercise("deposit-guard", "Guard", "class", "deposit", GUARD, (), GUARD_CALLS),
        Exercise("reentrant-guard", "Guard", "class", "deposit", GUARD + ", re-entrant", (), GUARD_CALLS),
        Exercise("fair-lock", "Guard", "class", "deposit", GUARD + ", granting in arrival order", (), GUARD_CALLS),
        Exercise(
            "counting-semaphore",
            "Semaphore",
            "class",
            "checkout",
            "`class Semaphore` with `__init__(self, permits)`, `acquire(self, timeout=None) -> bool`, `release(self)`",
            (2,),
            GUARD_CALLS,
        ),
        Exercise(
            "admission",
            "Admission",
            "class",
            "checkout",
            "`class Admission` with `__init__(self, capacity)`, `try_enter(self, timeout) -> bool`, `leave(self)`",
            (2,),
            (("try_enter", {"timeout": 0.0}), ("leave", {})),
        ),
        Exercise(
            "transfer-order",
            "lock_order",
            "function",
            "transfer",
            "`def lock_order(a: str, b: str) -> tuple[str, str]`",
            ("acc-00", "acc-01"),
        ),
    )
}

_modules = itertools.count(1)


def exercise_named(name: str) -> Exercise:
    try:
        return EXERCISES[name]
    except KeyError:
        raise PlugError(f"no exercise {name!r}; the server can plug in: {', '.join(EXERCISES)}") from None


def where(error: BaseException, path: Path) -> int | None:
    """The line of `path` nearest the failure in `error`'s traceback (None if the file is not in it)."""
    if isinstance(error, SyntaxError) and error.filename == str(path):
        return error.lineno
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == str(path)]
    return lines[-1] if lines else None


def describe(error: BaseException) -> str:
    """`ZeroDivisionError: division by zero`; `SystemExit(3)` for an exit, which says nothing by itself."""
    if isinstance(error, SystemExit):
        return f"SystemExit({error.code!r}): the trainee's code called sys.exit"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def load(exercise_name: str, path: Path) -> Any:
    """What the trainee's file at `path` defines for the exercise, checked against its interface."""
    exercise = exercise_named(exercise_name)
    path = Path(path).resolve()
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PlugError(f"{path}: cannot read it: {error}") from None
    module = types.ModuleType(f"bankapp_trainee_{next(_modules)}")
    module.__file__ = str(path)
    try:
        code = compile(source, str(path), "exec")
        sys.modules[module.__name__] = module  # dataclasses and pickling look their module up by name
        exec(code, module.__dict__)
    except BaseException as error:
        sys.modules.pop(module.__name__, None)
        line = where(error, path)
        at = f"{path}:{line}" if line else str(path)
        what = "syntax error" if isinstance(error, SyntaxError) else "raised while loading"
        detail = error.msg if isinstance(error, SyntaxError) else describe(error)
        raise PlugError(f"{at}: {what}: {detail}") from None
    found = getattr(module, exercise.defines, None)
    if found is None:
        raise PlugError(f"{path}: defines no {exercise.defines}; {exercise.name} asks for {exercise.interface}")
    check_shape(exercise, found, path)
    return found


def check_shape(exercise: Exercise, found: Any, path: Path) -> None:
    """Refuse a name of the wrong kind, or a signature the lab's calls cannot bind to."""
    wanted = f"{exercise.name} asks for {exercise.interface}"
    if exercise.kind == "class" and not isinstance(found, type):
        raise PlugError(f"{path}: {exercise.defines} is a {type(found).__name__}, not a class; {wanted}")
    if exercise.kind == "function" and (isinstance(found, type) or not callable(found)):
        raise PlugError(f"{path}: {exercise.defines} is not a function; {wanted}")
    made = ", ".join(map(repr, exercise.make_args))
    binds(found, exercise.make_args, {}, f"{exercise.defines}({made})", path, wanted)
    for method, kwargs in exercise.calls:
        attribute = getattr(found, method, None)
        if not callable(attribute):
            raise PlugError(f"{path}: {exercise.defines} has no method {method}; {wanted}")
        given = ", ".join(f"{name}={value!r}" for name, value in kwargs.items())
        binds(attribute, (None,), kwargs, f"{method}({given})", path, wanted)


def binds(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], call: str, path: Path, wanted: str
) -> None:
    """Refuse a signature that `function(*args, **kwargs)` cannot be bound to (`None` stands for `self`)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin or C type: nothing to read, its call will say
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        raise PlugError(f"{path}: the lab calls {call} but the signature is {signature}: {error}; {wanted}") from None
