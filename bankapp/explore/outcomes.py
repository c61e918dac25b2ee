"""What an exploration can conclude, and what it refuses: shared by the in-memory explorer (`explorer`) and
the database's (`database`), which the explorer loads only on the postgres store."""

from __future__ import annotations

#: Outcomes by kind, worst first: a schedule is judged by the first that holds.
OUTCOMES = ("self-deadlock", "deadlock", "over-capacity", "below-zero", "money-in-flight", "lost-update", "ok")


class InvalidExplore(ValueError):
    """A scenario, guard or bound that does not exist; `field` names which."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field
