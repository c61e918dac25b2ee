"""The isolation lab: Hermitage's anomaly cases on PostgreSQL, stepped like PostgreSQL's isolation tester.

`bankapp isolation` (and `POST /admin/isolation`) run each case as two or
three real sessions in a fixed order under read committed, repeatable read
and serializable, judge each cell from what the sessions read, wrote and
raised (`judge`), and set the judgement beside Hermitage's published
PostgreSQL result (`hermitage`). See docs/isolation.md.
"""

from .cases import BY_NAME, CASES, Case
from .hermitage import HERMITAGE, LEVELS
from .matrix import Cell, Matrix, run
from .stepper import IsolationError

__all__ = ["BY_NAME", "CASES", "HERMITAGE", "LEVELS", "Case", "Cell", "IsolationError", "Matrix", "run"]
