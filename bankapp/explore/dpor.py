"""Every schedule, each class of equivalent ones once: dynamic partial-order reduction with sleep sets.

The search is stateless, like loom's and CHESS's: it runs the code again
from the start for each schedule, steering it down a path of choices kept
on a stack (`Node`s), and backtracks. Without reduction it tries every
thread at every choice point: every schedule.

Two moves are *dependent* when they touch the same thing and one of them
changes it (a write, an acquire, a release; two reads commute). Two
schedules are *equivalent* when one can be turned into the other by
swapping adjacent independent moves: the same moves, and every pair of
dependent moves in the same order (a Mazurkiewicz trace). Equivalent
schedules run the same code on the same values and end the same way, so
one of each class is enough.

The reduction is Flanagan and Godefroid's classic DPOR (POPL 2005), as
loom uses it: after each run, for every move `j` find the latest earlier
move `i` of another thread that is dependent on it and not already before
it in happens-before (vector clocks); that pair is a race whose other
order must be tried, so thread(j) is added to the backtrack set of the
choice point before `i` (or every thread enabled there, if it was not).
Sleep sets (Godefroid 1996) keep a thread asleep at a choice point after
its subtree is explored, until a dependent move wakes it, so no class is
run twice.

Counting: each explored schedule stands for its whole class; the size of
a class is the number of orders of its moves that keep every dependent
pair and each thread's own order (linear extensions of its happens-before,
counted by dynamic programming over how far each thread has got).
`equivalent` is the sum of the class sizes less the schedules run: the
schedules skipped because one of their class was run. A test checks the
sum against the count of a search without reduction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Generic, Protocol, TypeVar

from .moves import Hang, Move, dependent


class Nondeterministic(RuntimeError):
    """The same choices led to a different state: the code under test depends on something besides the schedule."""


@dataclass
class Node:
    """One choice point on the current path: who could go, who goes, and what is left to try."""

    enabled: list[str]
    sleep: dict[str, set]  # thread -> what its move from here touches: asleep, its class is covered
    chosen: str = ""
    backtrack: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    touched: dict[str, set] = field(default_factory=dict)


class Run(Protocol):
    """What the search reads of one execution: threads' (`engine.Execution`) or sessions' (`database`)."""

    moves: list[Move]
    end: str | None  # None: all done; "deadlock", "self-deadlock", "redundant", "bound"


R = TypeVar("R", bound=Run)


@dataclass
class Search(Generic[R]):
    """Runs `execute(choose)` again and again until every class is covered, or `max_schedules` ran.

    `execute` builds a fresh execution with `choose` as its chooser, runs
    it and returns it; `judge(execution)` is called on each complete run.
    """

    execute: Callable[[Callable[[list[str], list[Move]], str | None]], R]
    judge: Callable[[R], None]
    reduce: bool = True
    max_schedules: int | None = None
    schedules: int = 0  # runs to the end (or to a deadlock)
    equivalent: int = 0  # schedules skipped, each equivalent to one run
    redundant: int = 0  # runs cut short because every thread able to go was asleep
    complete: bool = False

    def run_saying_why_it_stopped(self) -> str | None:
        """Run the search; None when it covered every class, else why it stopped early (a hang in the code
        under test, a nondeterministic run, or `max_schedules`)."""
        try:
            self.run()
        except Hang as hang:
            return f"hang: {hang}"
        except Nondeterministic as error:
            return f"nondeterministic: {error}"
        return None if self.complete else f"max-schedules: stopped after {self.schedules} schedules"

    def run(self) -> None:
        stack: list[Node] = []
        while True:
            execution = self._one(stack)
            if execution.end not in ("redundant", "bound"):
                self.schedules += 1
                if self.reduce:
                    self.equivalent += class_size(execution.moves) - 1
                self.judge(execution)
            else:
                self.redundant += execution.end == "redundant"
            if self.reduce:
                self._races(stack, execution.moves)
            if not self._backtrack(stack):
                self.complete = True
                return
            if self.max_schedules is not None and self.schedules >= self.max_schedules:
                return

    def _one(self, stack: list[Node]) -> R:
        depth = 0

        def choose(enabled: list[str], moves: list[Move]) -> str | None:
            nonlocal depth
            if depth > 0:  # the previous move is done: note what it touched
                parent = stack[depth - 1]
                parent.touched[parent.chosen] = moves[depth - 1].touched | _also(moves[depth - 1])
            if depth < len(stack):
                node = stack[depth]
                if node.enabled != enabled:
                    raise Nondeterministic(
                        f"after {' '.join(m.label for m in moves)} the threads able to go were {node.enabled} "
                        f"before and are {enabled} now"
                    )
            else:
                sleep = {}
                if depth > 0 and self.reduce:
                    parent = stack[depth - 1]
                    last = parent.touched[parent.chosen]
                    sleep = {t: fp for t, fp in parent.sleep.items() if not dependent(fp, last)}
                node = Node(list(enabled), sleep)
                awake = [t for t in enabled if t not in sleep]
                if not awake:
                    return None
                node.chosen = awake[0]
                node.backtrack = {awake[0]} if self.reduce else set(enabled)
                stack.append(node)
            depth += 1
            return node.chosen

        execution = self.execute(choose)
        moves = execution.moves
        if moves and depth == len(moves):
            parent = stack[depth - 1]
            parent.touched[parent.chosen] = moves[-1].touched | _also(moves[-1])
        del stack[len(moves) :]
        return execution

    def _races(self, stack: list[Node], moves: list[Move]) -> None:
        """Add to backtrack sets the other order of every race of this run (classic DPOR)."""
        clocks: dict[str, dict[str, int]] = {}
        move_clocks: list[dict[str, int]] = []
        touched = [m.touched | _also(m) for m in moves]
        for j, move in enumerate(moves):
            p = move.thread
            mine = clocks.get(p, {})
            for i in range(j - 1, -1, -1):
                q = moves[i].thread
                if q == p or not dependent(touched[i], touched[j]) or mine.get(q, -1) >= i:
                    continue
                node = stack[i]
                if p in node.enabled:
                    node.backtrack.add(p)
                else:
                    node.backtrack |= set(node.enabled)
                break
            clock = dict(mine)
            for k in range(j):
                if dependent(touched[k], touched[j]):
                    _join(clock, move_clocks[k])
            clock[p] = j
            move_clocks.append(clock)
            clocks[p] = clock
            for other in move.also:
                clocks[other] = _join(dict(clocks.get(other, {})), clock)

    def _backtrack(self, stack: list[Node]) -> bool:
        """Move the path to the next choice left to try; False when none is left anywhere."""
        while stack:
            node = stack[-1]
            node.done.add(node.chosen)
            if self.reduce and node.chosen in node.touched:
                node.sleep[node.chosen] = node.touched[node.chosen]
            todo = sorted(node.backtrack - node.done - node.sleep.keys())
            if todo:
                node.chosen = todo[0]
                return True
            stack.pop()
        return False


def _also(move: Move) -> set:
    """A move that woke threads stands for their going on too: it touches their thread (orders their moves)."""
    return {(("thread", name), "w") for name in move.also}


def _join(into: dict[str, int], other: dict[str, int]) -> dict[str, int]:
    for thread, index in other.items():
        if into.get(thread, -1) < index:
            into[thread] = index
    return into


def class_size(moves: list[Move]) -> int:
    """How many schedules are equivalent to `moves` (itself included): orders of its moves that keep each
    thread's own order, the order of every dependent pair, and each woken thread after its waking."""
    touched = [m.touched | _also(m) for m in moves]
    chains: dict[str, list[int]] = {}
    last_act: dict[str, int] = {}
    preds: list[set[int]] = []
    for j, move in enumerate(moves):
        before = {k for k in range(j) if dependent(touched[k], touched[j])}
        if move.thread in last_act:
            before.add(last_act[move.thread])
        preds.append(before)
        chains.setdefault(move.thread, []).append(j)
        last_act[move.thread] = j
        for other in move.also:
            last_act[other] = j
    names = sorted(chains)
    where = {j: (names.index(moves[j].thread), chains[moves[j].thread].index(j)) for j in range(len(moves))}

    @cache
    def count(position: tuple[int, ...]) -> int:
        if all(position[c] == len(chains[name]) for c, name in enumerate(names)):
            return 1
        total = 0
        for c, name in enumerate(names):
            if position[c] == len(chains[name]):
                continue
            j = chains[name][position[c]]
            if all(position[where[k][0]] > where[k][1] for k in preds[j]):
                total += count((*position[:c], position[c] + 1, *position[c + 1 :]))
        return total

    return count(tuple(0 for _ in names))
