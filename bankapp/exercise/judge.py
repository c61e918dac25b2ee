"""The trainee's file loaded and judged by every schedule (this runs in the sandbox's child process).

`load(exercise, path)` imports the file as a module of its own and checks
the names and signatures the exercise asks for (`Unloadable` says what is
missing, plainly). `schedules(exercise, module, path)` runs each of the
exercise's scenarios with `explore_threads`: the trainee's `threading`
primitives are the controlled ones (`patched`) and each line of their
file a step (`tracing`). The first scenario that fails stops the stage;
its shortest failing schedule is replayed once more (`replay_threads`) to
say what each thread did and saw, and where an exception or a busy wait
was, by line.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from ..explore.moves import Aborted
from ..explore.threads import explore_threads, replay_threads
from .catalog import Exercise
from .scenarios import SCENARIOS, Scenario, State, me
from .tracing import BusyWait, Tracer

#: Most schedules per scenario before the search says it stopped early (and the check does not pass).
MAX_SCHEDULES = int(__import__("os").environ.get("EX_MAX", 20_000))


class Unloadable(Exception):
    """The file cannot be judged: a syntax error, a missing name, a wrong signature; said plainly."""


def load(exercise: Exercise, path: Path) -> ModuleType:
    """The trainee's file as a module, its interface checked; `Unloadable` if not."""
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise Unloadable(f"{path}: cannot be read: {error}") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as error:
        raise Unloadable(f"{path}, line {error.lineno}: a syntax error: {error.msg}") from None
    spec = importlib.util.spec_from_file_location("trainee", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["trainee"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:
        raise Unloadable(f"{path}: loading it raised {_described(error, str(path))}") from None
    _check_interface(exercise, module, path)
    return module


def _check_interface(exercise: Exercise, module: ModuleType, path: Path) -> None:
    member = exercise.member
    found = getattr(module, member.name, None)
    kind = "class" if member.is_class else "function"
    if found is None:
        raise Unloadable(f"{path} has no {kind} {member.name}; {exercise.name} asks for {_interface(exercise)}")
    if member.is_class != isinstance(found, type) or not callable(found):
        raise Unloadable(f"{path}: {member.name} is not a {kind}; {exercise.name} asks for {_interface(exercise)}")
    calls = member.calls or {"": ("acc-00", "acc-01")}
    for method, arguments in calls.items():
        target = getattr(found, method, None) if method else found
        if target is None:
            raise Unloadable(
                f"{path}: {member.name} has no method {method}; {exercise.name} asks for {_interface(exercise)}"
            )
        try:
            signature = inspect.signature(target)
            signature.bind(*((None,) if method else ()), *arguments)
        except (TypeError, ValueError):
            name = f"{member.name}.{method}" if method else member.name
            raise Unloadable(
                f"{path}: {name}{signature} cannot be called as {exercise.name} calls it; it asks for "
                f"{_interface(exercise)}"
            ) from None


def _interface(exercise: Exercise) -> str:
    first = exercise.task.split(". ")[0]
    return first.removeprefix("Write ")


def _line(error: BaseException, path: str) -> int | None:
    """The last line of the trainee's file in the error's traceback."""
    if isinstance(error, BusyWait):
        return error.line
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == path]
    return lines[-1] if lines else None


def _raised(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".rstrip(": ")


def _described(error: BaseException, path: str) -> str:
    line = _line(error, path)
    where = f" at line {line}" if line else ""
    return f"{type(error).__name__}{where}: {error}".rstrip(": ")


def schedules(exercise: Exercise, module: ModuleType, path: str, slow: bool = False) -> dict:
    """The `schedules` stage: every scenario explored; the counts, and the first failure in detail."""
    tracer = Tracer(module, path)
    stage: dict[str, Any] = {
        "stage": "schedules",
        "passed": True,
        "schedules": 0,
        "equivalent": 0,
        "complete": True,
        "outcomes": {},
        "scenarios": [],
        "counterexample": None,
        "error": None,
    }
    for scenario in SCENARIOS[exercise.name]:
        if scenario.slow and not slow:
            continue
        result = _explore(scenario, module, tracer, path)
        stage["scenarios"].append({"scenario": scenario.name, "does": scenario.does, **result})
        stage["schedules"] += result["schedules"]
        stage["equivalent"] += result["equivalent"]
        stage["complete"] = stage["complete"] and result["complete"]
        for kind, count in result["outcomes"].items():
            stage["outcomes"][kind] = stage["outcomes"].get(kind, 0) + count
        if result["counterexample"] or result["error"] or not result["complete"]:
            stage["passed"] = False
            stage["counterexample"] = result["counterexample"]
            stage["error"] = result["error"] or (
                None if result["counterexample"] else {"kind": "incomplete", "line": None, "message": result["stopped"]}
            )
            break
    return stage


def _explore(scenario: Scenario, module: ModuleType, tracer: Tracer, path: str) -> dict:
    made: list[State] = []

    def setup() -> State:
        tracer.reset()
        state = scenario.setup(module)
        tracer.observer = state.observe
        state.traced = tracer.traced
        made.append(state)
        del made[:-1]
        return state

    workers = [_worker(body, tracer, path) for body in scenario.workers]
    result = explore_threads(setup, workers, scenario.judge, modules=(module,), max_schedules=MAX_SCHEDULES)
    answer = {key: result[key] for key in ("schedules", "equivalent", "complete", "stopped", "outcomes")}
    answer["counterexample"] = None
    answer["error"] = None
    stopped = result["stopped"] or ""
    if stopped.startswith("hang"):
        line = _running_line(path)
        answer["error"] = {"kind": "hang", "line": line, "message": stopped.removeprefix("hang: ")}
        return answer
    example = result["counterexample"]
    if example is None:
        return answer
    replayed = replay_threads(setup, workers, scenario.judge, example["schedule"], modules=(module,))
    state = made[-1]
    outcome = state.problems[0]["kind"] if state.problems else example["outcome"]
    if state.problems:
        problem = state.problems[0]
        answer["error"] = {"kind": problem["kind"], "line": problem["line"], "message": problem["message"]}
    words = [] if state.problems else [message for _, message in state.findings]
    if replayed["stuck"]:
        words.insert(0, _stuck_words(example["outcome"], replayed["stuck"]))
    for entry in example["steps"]:  # a step that raised before it could say anything
        thread, _, kind = entry["step"].partition(".")
        entry["does"] = entry["does"] or f"{thread} {kind}: raised"
    answer["counterexample"] = {
        "scenario": scenario.name,
        "schedule": example["schedule"],
        "outcome": outcome,
        "steps": example["steps"],
        "stuck": replayed["stuck"],
        "findings": words,
    }
    return answer


def _stuck_words(outcome: str, stuck: list[dict]) -> str:
    waits = "; ".join(
        f"{s['thread']} waits for the {s['waits_for']} held by {', '.join(s['held_by']) or 'nobody'}" for s in stuck
    )
    return f"{outcome}: {waits}"


def _worker(body: Any, tracer: Tracer, path: str) -> Any:
    """A thread's body with the trainee's lines as steps; what the trainee's code raised is noted with its line."""
    traced = tracer.traced(body)

    def run(state: State) -> None:
        try:
            traced(state)
        except Aborted:
            raise
        except BusyWait as spin:
            state.problems.append({"kind": "busy-wait", "thread": me(), "line": spin.line, "message": str(spin)})
        except BaseException as error:
            line = _line(error, path)
            state.problems.append(
                {"kind": "error", "thread": me(), "line": line, "message": f"thread {me()} raised {_raised(error)}"}
            )

    return run


def _running_line(path: str) -> int | None:
    """Where an explored thread that did not come back is now, in the trainee's file."""
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if not names.get(ident, "").startswith("explore-"):
            continue
        stack = [f for f in traceback.extract_stack(frame) if f.filename == path]
        if stack:
            return stack[-1].lineno
    return None
