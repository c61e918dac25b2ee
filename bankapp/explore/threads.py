"""`explore_threads(setup, workers, invariant)`: every schedule of any code built on `threading`.

The shape of loom's `loom::model` and frontrun's `explore`: `setup()` makes
a fresh state for each schedule, each worker is a thread's body run on it,
and `invariant(state)` says whether the end state is right. The modules
named in `modules` run with the controlled primitives of `primitives`
(`patched`), so their own `threading.Lock()`, `Condition.wait()` and so on
are the steps. Outcomes: `ok`, `invariant` (it did not hold), `error` (a
worker raised), `deadlock`, `self-deadlock`. This is what the exercises
(issue 23) build on: a trainee's module, judged by every schedule.
"""

from __future__ import annotations

import functools
import string
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .dpor import Search, class_size
from .engine import Execution, Runner
from .primitives import patched, restart_numbering


def explore_threads(
    setup: Callable[[], Any],
    workers: list[Callable[[Any], Any]],
    invariant: Callable[[Any], bool | str],
    *,
    modules: tuple[ModuleType, ...] = (),
    max_schedules: int | None = None,
    reduce: bool = True,
) -> dict:
    """Every schedule of `workers` (threads a, b, c, ...) on a fresh `setup()`; the counts and the shortest
    failing schedule: {schedules, equivalent, complete, stopped, outcomes, counterexample}.

    `invariant` answers True (`ok`), False (`invariant`) or, to name what went wrong, the outcome's name.
    """
    outcomes: Counter[str] = Counter()
    found: list[dict] = []

    def execute(choose) -> Execution:
        return _run(setup, workers, choose)

    def judge(execution: Execution) -> None:
        kind, errors = _judge(execution, invariant)
        outcomes[kind] += class_size(execution.moves) if reduce else 1
        if kind != "ok" and (not found or len(execution.moves) < len(found[0]["moves"])):
            error = f"{errors[0].name}: {type(errors[0].error).__name__}: {errors[0].error}" if errors else None
            found[:] = [{"moves": list(execution.moves), "outcome": kind, "stuck": execution.stuck, "error": error}]

    search = Search(execute, judge, reduce=reduce, max_schedules=max_schedules)
    with patched(*modules):
        stopped = search.run_saying_why_it_stopped()
    example = None
    if found:
        moves = found[0]["moves"]
        example = {
            "schedule": " ".join(move.label for move in moves),
            "outcome": found[0]["outcome"],
            "steps": [{"step": move.label, "does": "; ".join(move.calls)} for move in moves],
            "stuck": found[0]["stuck"],
            "error": found[0]["error"],
        }
    return {
        "schedules": search.schedules,
        "equivalent": search.equivalent,
        "complete": search.complete,
        "stopped": stopped,
        "outcomes": dict(sorted(outcomes.items())),
        "counterexample": example,
    }


def replay_threads(
    setup: Callable[[], Any],
    workers: list[Callable[[Any], Any]],
    invariant: Callable[[Any], bool | str],
    schedule: str,
    *,
    modules: tuple[ModuleType, ...] = (),
) -> dict:
    """Run `workers` once in the order of `schedule`, as `explore_threads` prints one ("a.acquire b.read ...";
    past its end, the threads go on in name order): {schedule, ran, outcome, error, stuck}.

    Raises `ValueError` naming the first entry the threads cannot take at that point.
    """
    wanted = schedule.split()

    def choose(enabled: list[str], moves: list) -> str:
        if moves and len(moves) <= len(wanted) and moves[-1].label != wanted[len(moves) - 1]:
            raise ValueError(f"{wanted[len(moves) - 1]}: that thread's step there is {moves[-1].label}")
        if len(moves) >= len(wanted):
            return enabled[0]
        thread = wanted[len(moves)].partition(".")[0]
        if thread not in enabled:
            raise ValueError(f"{wanted[len(moves)]}: thread {thread} cannot go then; the threads able to are {enabled}")
        return thread

    with patched(*modules):
        execution = _run(setup, workers, choose)
    ran = [move.label for move in execution.moves]
    if ran[: len(wanted)] != wanted:
        raise ValueError(f"the schedule names {len(wanted)} steps; the threads ran {' '.join(ran)}")
    kind, errors = _judge(execution, invariant)
    error = f"{errors[0].name}: {type(errors[0].error).__name__}: {errors[0].error}" if errors else None
    return {"schedule": schedule, "ran": " ".join(ran), "outcome": kind, "error": error, "stuck": execution.stuck}


def _run(setup: Callable[[], Any], workers: list[Callable[[Any], Any]], choose) -> Execution:
    restart_numbering()
    state = setup()
    runners = [
        Runner(name, f"worker {name}", operation=functools.partial(worker, state), steps=[], planned=False)
        for name, worker in zip(string.ascii_lowercase, workers, strict=False)
    ]
    execution = Execution(runners, choose)
    execution.lab = state
    execution.run()
    return execution


def _judge(execution: Execution, invariant: Callable[[Any], bool | str]) -> tuple[str, list[Runner]]:
    errors = [r for r in execution.runners.values() if r.error is not None]
    if execution.end in ("deadlock", "self-deadlock"):
        return execution.end, errors
    if errors:
        return "error", errors
    verdict = invariant(execution.lab)
    if isinstance(verdict, str):
        return verdict, errors
    return ("ok" if verdict else "invariant"), errors
