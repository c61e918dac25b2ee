"""What one choice of a schedule did (`Move`), when two conflict (`dependent`), and how an execution stops."""

from __future__ import annotations

from dataclasses import dataclass, field


class Aborted(BaseException):
    """Raised in a thread whose execution ended (a deadlock, a bound, a redundant schedule): it unwinds."""


class Hang(RuntimeError):
    """The code under test did not come back to a step within a bound; `where` says which thread, at which step."""

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


@dataclass
class Move:
    """One choice: `thread` did its step `label`; `touched` is every (object, mode) read or changed meanwhile,
    by it or by the threads it woke (`also`), which ran before the next choice."""

    thread: str
    label: str
    touched: set = field(default_factory=set)
    also: set = field(default_factory=set)
    calls: list[str] = field(default_factory=list)  # what happened, in words: "a read acc-00"


def dependent(first: set, second: set) -> bool:
    """Two moves conflict when they touch one object and one of them changes it (reads commute)."""
    return any((obj, "w") in second or (mode == "w" and (obj, "r") in second) for obj, mode in first)
