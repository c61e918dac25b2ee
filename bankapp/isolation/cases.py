"""Hermitage's PostgreSQL cases: each one permutation of steps, and the judge that states its anomaly.

The steps are Hermitage's (postgres.md), in its order, with its values.
Where postgres.md scripts a case twice (once at the level that allows it,
once at the level that prevents it) the statements are the same; here the
one permutation runs at all three levels. `T2, BLOCKS` in Hermitage is not
written here: whether a step waits is seen when it runs. Hermitage's
`select * from test` after a commit (outside any transaction) is left to
the observer's final read.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import judge
from .steps import Step, Where, abort, commit, read, write


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    steps: tuple[Step, ...]
    rule: judge.Judge

    @property
    def sessions(self) -> tuple[str, ...]:
        return tuple(sorted({step.session for step in self.steps}))


def by_id(key: int) -> Where:
    return lambda k, v: k == key


def everything(k: int, v: int) -> bool:
    return True


CASES: tuple[Case, ...] = (
    Case(
        "G0",
        "write cycles",
        (
            write("T1", "update test set value = 11 where id = 1"),
            write("T2", "update test set value = 12 where id = 1"),
            write("T1", "update test set value = 21 where id = 2"),
            commit("T1"),
            write("T2", "update test set value = 22 where id = 2"),
            commit("T2"),
        ),
        judge.no_serial_order,
    ),
    Case(
        "G1a",
        "aborted reads",
        (
            write("T1", "update test set value = 101 where id = 1"),
            read("T2", None, everything),
            abort("T1"),
            read("T2", None, everything),
            commit("T2"),
        ),
        judge.aborted_read,
    ),
    Case(
        "G1b",
        "intermediate reads",
        (
            write("T1", "update test set value = 101 where id = 1"),
            read("T2", None, everything),
            write("T1", "update test set value = 11 where id = 1"),
            commit("T1"),
            read("T2", None, everything),
            commit("T2"),
        ),
        judge.intermediate_read,
    ),
    Case(
        "G1c",
        "circular information flow",
        (
            write("T1", "update test set value = 11 where id = 1"),
            write("T2", "update test set value = 22 where id = 2"),
            read("T1", "id = 2", by_id(2)),
            read("T2", "id = 1", by_id(1)),
            commit("T1"),
            commit("T2"),
        ),
        judge.circular_reads,
    ),
    Case(
        "OTV",
        "observed transaction vanishes",
        (
            write("T1", "update test set value = 11 where id = 1"),
            write("T1", "update test set value = 19 where id = 2"),
            write("T2", "update test set value = 12 where id = 1"),
            commit("T1"),
            read("T3", "id = 1", by_id(1)),
            write("T2", "update test set value = 18 where id = 2"),
            read("T3", "id = 2", by_id(2)),
            commit("T2"),
            read("T3", "id = 2", by_id(2)),
            read("T3", "id = 1", by_id(1)),
            commit("T3"),
        ),
        judge.observed_vanishes,
    ),
    Case(
        "PMP",
        "predicate-many-preceders",
        (
            read("T1", "value = 30", lambda k, v: v == 30),
            write("T2", "insert into test (id, value) values (3, 30)"),
            commit("T2"),
            read("T1", "value % 3 = 0", lambda k, v: v % 3 == 0),
            commit("T1"),
        ),
        judge.no_serial_order,
    ),
    Case(
        "P4",
        "lost update",
        (
            read("T1", "id = 1", by_id(1)),
            read("T2", "id = 1", by_id(1)),
            write("T1", "update test set value = 11 where id = 1"),
            write("T2", "update test set value = 11 where id = 1"),
            commit("T1"),
            commit("T2"),
        ),
        judge.no_serial_order,
    ),
    Case(
        "G-single",
        "read skew",
        (
            read("T1", "id = 1", by_id(1)),
            read("T2", "id = 1", by_id(1)),
            read("T2", "id = 2", by_id(2)),
            write("T2", "update test set value = 12 where id = 1"),
            write("T2", "update test set value = 18 where id = 2"),
            commit("T2"),
            read("T1", "id = 2", by_id(2)),
            commit("T1"),
        ),
        judge.no_serial_order,
    ),
    Case(
        "G2-item",
        "write skew",
        (
            read("T1", "id in (1, 2)", lambda k, v: k in (1, 2)),
            read("T2", "id in (1, 2)", lambda k, v: k in (1, 2)),
            write("T1", "update test set value = 11 where id = 1"),
            write("T2", "update test set value = 21 where id = 2"),
            commit("T1"),
            commit("T2"),
        ),
        judge.no_serial_order,
    ),
    Case(
        "G2",
        "anti-dependency cycles",
        (
            read("T1", "value % 3 = 0", lambda k, v: v % 3 == 0),
            read("T2", "value % 3 = 0", lambda k, v: v % 3 == 0),
            write("T1", "insert into test (id, value) values (3, 30)"),
            write("T2", "insert into test (id, value) values (4, 42)"),
            commit("T1"),
            commit("T2"),
        ),
        judge.no_serial_order,
    ),
)

BY_NAME = {case.name: case for case in CASES}
