"""Every case at every level, judged, beside Hermitage's published result.

`run(url)` opens a scratch schema and the sessions once, runs each case at
read committed, repeatable read and serializable, and answers a `Matrix`:
one `Cell` per case and level with the result, how it was prevented, what
was seen (`why`), the steps as they ran, and Hermitage's result for that
cell (and whether postgres.md scripts it). `agrees` is whether every cell
matches Hermitage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .cases import CASES, Case
from .hermitage import HERMITAGE, LEVELS
from .judge import judge
from .stepper import IsolationError, Stepper


@dataclass
class Cell:
    case: str
    level: str
    result: str
    how: str | None
    hermitage: str
    hermitage_scripted: bool
    why: str
    steps: list[str]

    @property
    def agrees(self) -> bool:
        return self.result == self.hermitage


@dataclass
class Matrix:
    cells: list[Cell]

    @property
    def agrees(self) -> bool:
        return all(cell.agrees for cell in self.cells)

    def cell(self, case: str, level: str) -> Cell:
        return next(c for c in self.cells if c.case == case and c.level == level)

    def to_json(self) -> dict[str, Any]:
        return {"cases": [{**asdict(cell), "agrees": cell.agrees} for cell in self.cells], "agrees": self.agrees}


def run_case(stepper: Stepper, case: Case, level: str) -> Cell:
    trace = stepper.run(case.steps, level)
    for done in trace.done:  # a refusal is a result; any other error is a broken case
        if done.sqlstate not in (None, "40001", "40P01"):
            raise IsolationError(f"{case.name} at {level}: {done.step} failed: {done.sqlstate} {done.message}")
    result, how, why = judge(trace, case.rule)
    published = HERMITAGE[case.name][level]
    return Cell(
        case.name, level, result, how, published.result, published.scripted, why, [d.line() for d in trace.done]
    )


def run(url: str, cases: tuple[Case, ...] = CASES, levels: tuple[str, ...] = LEVELS) -> Matrix:
    with Stepper(url) as stepper:
        return Matrix([run_case(stepper, case, level) for case in cases for level in levels])
