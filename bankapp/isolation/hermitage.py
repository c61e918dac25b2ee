"""Hermitage's published PostgreSQL result, for comparison only.

Transcribed from Hermitage's `postgres.md` (Martin Kleppmann, github.com
ept/hermitage; run there on PostgreSQL 9.3.5) and its README's table. Each
cell says what Hermitage reports for that case and level, and whether
`postgres.md` itself scripts the case at that level (it scripts some cells
per case and leaves the rest to "a stronger level prevents what a weaker one
prevents"). Nothing in `bankapp.isolation` reads this table to decide a
result: the runner judges every cell from what its sessions read, wrote
and raised, and only then is the judgement set beside this.
"""

from __future__ import annotations

from typing import NamedTuple

LEVELS = ("read committed", "repeatable read", "serializable")


class Published(NamedTuple):
    result: str  # "prevented" or "anomaly"
    scripted: bool  # postgres.md has the SQL of this case at this level


_P, _A = "prevented", "anomaly"

#: case -> one cell per level, in `LEVELS` order: (result, scripted in postgres.md)
_TABLE: dict[str, tuple[tuple[str, bool], ...]] = {
    "G0": ((_P, True), (_P, False), (_P, False)),
    "G1a": ((_P, True), (_P, False), (_P, False)),
    "G1b": ((_P, True), (_P, False), (_P, False)),
    "G1c": ((_P, True), (_P, False), (_P, False)),
    "OTV": ((_P, True), (_P, False), (_P, False)),
    "PMP": ((_A, True), (_P, True), (_P, False)),
    "P4": ((_A, True), (_P, True), (_P, False)),
    "G-single": ((_A, True), (_P, True), (_P, False)),
    "G2-item": ((_A, False), (_A, True), (_P, True)),
    "G2": ((_A, False), (_A, True), (_P, True)),
}

HERMITAGE: dict[str, dict[str, Published]] = {
    case: {level: Published(*cell) for level, cell in zip(LEVELS, cells, strict=True)} for case, cells in _TABLE.items()
}
