"""A case's steps, written as PostgreSQL's isolation tester writes its specs.

A spec (src/test/isolation/specs in PostgreSQL) names sessions, gives each a
`setup { BEGIN ISOLATION LEVEL ... }` and its steps, and runs them in a
permutation: one step at a time, in a fixed order; a step that waits for a
lock is shown `<waiting ...>` and the permutation goes on with the other
sessions. Here a case is one permutation of Hermitage's steps, and every
session's setup is `BEGIN ISOLATION LEVEL <level>`, so one case runs at
every level unchanged.

A read carries its WHERE clause twice: as SQL for the database and as a
Python predicate over `(id, value)`, so that the judge can ask what the same
read would have returned in another state (tests check the two agree).
Writes return what they wrote (`RETURNING id, value`): the judge works from
what the database says happened, not from what the step meant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Where = Callable[[int, int], bool]


@dataclass(frozen=True)
class Step:
    session: str
    sql: str
    where: Where | None = None  # a read's predicate over (id, value)
    shown: str | None = None  # how to print it, when the SQL carries more than the lesson needs to show

    @property
    def kind(self) -> str:
        """`select`, `update`, `insert`, `delete`, `commit` or `abort`."""
        return self.sql.split(None, 1)[0].lower()

    @property
    def text(self) -> str:
        """The step as Hermitage writes it: without the RETURNING the judge needs."""
        return self.shown or self.sql.split(" returning ")[0]

    def __str__(self) -> str:
        return f"{self.session}: {self.text}"


def read(session: str, where_sql: str | None, where: Where, lock: bool = False) -> Step:
    """`select * from test where <where_sql>`; `where` is the same clause in Python; `lock`: FOR UPDATE."""
    clause = f" where {where_sql}" if where_sql else ""
    return Step(session, f"select id, value from test{clause} order by id" + (" for update" if lock else ""), where)


def write(session: str, sql: str) -> Step:
    """An insert, update or delete; the rows it touched come back."""
    return Step(session, f"{sql} returning id, value")


def commit(session: str) -> Step:
    return Step(session, "commit")


def abort(session: str) -> Step:
    return Step(session, "abort")
