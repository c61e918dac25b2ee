"""Judging a run from what its sessions read, wrote and raised.

Adya's anomalies are statements about a history: which versions each
transaction read, which it wrote, which committed. The judges below look
only at the trace (the rows each read returned, the rows each write
returned, the commit tags, the final table) and say in a sentence what went
wrong, or `None`. Each case names the judge that states its anomaly:

- `no_serial_order`: no order of the committed transactions, run one after
  another from Hermitage's rows, gives every read they made and the final
  table (lost update, read skew, write skew, phantoms, G0's mixed writes);
- `aborted_read` (G1a), `intermediate_read` (G1b), `circular_reads` (G1c):
  a transaction read a version another had not committed;
- `observed_vanishes` (OTV): having seen a transaction's write, a reader
  later reads a row that transaction also wrote and finds an older version.

If the judge finds nothing, how the level prevented it is read from the
trace too: a `40001` raised, a step that waited on a lock (`blocked`), or a
read that returned an older version than the newest one (`snapshot`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import permutations

from .stepper import Done, Trace


@dataclass(frozen=True)
class Op:
    kind: str  # read, write, delete
    done: Done


def ops(trace: Trace, session: str) -> list[Op]:
    """The session's reads and writes that happened, in the order they finished."""
    out = []
    for done in sorted(trace.done, key=lambda d: d.finished):
        if done.step.session != session or done.status != "ok":
            continue
        if done.step.where is not None:
            out.append(Op("read", done))
        elif done.step.kind in ("update", "insert"):
            out.append(Op("write", done))
        elif done.step.kind == "delete":
            out.append(Op("delete", done))
    return out


def sessions(trace: Trace) -> list[str]:
    return sorted({done.step.session for done in trace.done})


def rows_text(rows: Iterable[tuple[int, int]]) -> str:
    return ", ".join(f"{k} => {v}" for k, v in sorted(rows)) or "no rows"


def no_serial_order(trace: Trace) -> str | None:
    committed = [name for name in sessions(trace) if trace.committed(name)]
    for order in permutations(committed):
        state = dict(trace.initial)
        if all(replays(trace, name, state) for name in order) and state == trace.final:
            return None
    reads = [
        f"{op.done.step.session} read {rows_text(op.done.rows)}"
        for name in committed
        for op in ops(trace, name)
        if op.kind == "read"
    ]
    said = "; ".join([*reads, f"the table ends {rows_text(trace.final.items())}"])
    return f"{said}: no order of {' and '.join(committed)} run one after the other gives that"


def replays(trace: Trace, session: str, state: dict[int, int]) -> bool:
    """Run the session's reads and writes on `state`; False at the first read that would have returned else."""
    for op in ops(trace, session):
        if op.kind == "read":
            where = op.done.step.where
            assert where is not None, "every read step has its predicate"
            if tuple(sorted((k, v) for k, v in state.items() if where(k, v))) != op.done.rows:
                return False
        elif op.kind == "write":
            state.update(dict(op.done.rows))
        else:
            for key, _ in op.done.rows:
                state.pop(key, None)
    return True


def writers(trace: Trace) -> dict[tuple[int, int], list[tuple[str, Done]]]:
    """(id, value) -> who wrote that version, and in which step."""
    found: dict[tuple[int, int], list[tuple[str, Done]]] = {}
    for name in sessions(trace):
        for op in ops(trace, name):
            if op.kind == "write":
                for row in op.done.rows:
                    found.setdefault((row[0], row[1]), []).append((name, op.done))
    return found


def foreign_reads(trace: Trace) -> Iterator[tuple[str, tuple[int, int], str, Done]]:
    """(reader, row, writer, the writer's step) for every row read that another session wrote."""
    written = writers(trace)
    for name in sessions(trace):
        for op in ops(trace, name):
            if op.kind != "read":
                continue
            for row in op.done.rows:
                for writer, step in written.get((row[0], row[1]), []):
                    if writer != name:
                        yield name, row, writer, step


def aborted_read(trace: Trace) -> str | None:
    for reader, (key, value), writer, _ in foreign_reads(trace):
        if not trace.committed(writer):
            return f"{reader} read {key} => {value}, written by {writer}, which never committed"
    return None


def intermediate_read(trace: Trace) -> str | None:
    for reader, (key, value), writer, step in foreign_reads(trace):
        later = [
            op.done
            for op in ops(trace, writer)
            if op.kind == "write" and op.done.finished > step.finished and key in dict(op.done.rows)
        ]
        if later:
            return (
                f"{reader} read {key} => {value}, which {writer} then overwrote with "
                f"{dict(later[-1].rows)[key]}: an intermediate version"
            )
    return None


def circular_reads(trace: Trace) -> str | None:
    edges = {(writer, reader): (key, value) for reader, (key, value), writer, _ in foreign_reads(trace)}
    for (writer, reader), (key, value) in edges.items():
        if (reader, writer) in edges:
            back = edges[(reader, writer)]
            return (
                f"{reader} read {writer}'s {key} => {value} and {writer} read {reader}'s {back[0]} => {back[1]}: "
                "information flowed both ways"
            )
    return None


def observed_vanishes(trace: Trace) -> str | None:
    written = writers(trace)
    history: dict[int, list[tuple[int, str]]] = {}  # row -> [(when written, by whom)]
    for (key, _), found in written.items():
        history.setdefault(key, []).extend((done.finished, writer) for writer, done in found)

    def when(key: int, value: int, reader: str) -> int:
        """When the version read was written: 0 for Hermitage's own rows."""
        return max((done.finished for writer, done in written.get((key, value), []) if writer != reader), default=0)

    for reader in sessions(trace):
        seen: dict[str, tuple[int, int]] = {}  # writer -> a version of theirs the reader saw
        for op in ops(trace, reader):
            if op.kind != "read":
                continue
            for key, value in op.done.rows:
                read_when = when(key, value, reader)
                for writer, shown in seen.items():
                    theirs = [at for at, by in history.get(key, []) if by == writer]
                    if theirs and read_when < max(theirs):
                        return (
                            f"{reader} saw {writer}'s {shown[0]} => {shown[1]}, then read {key} => {value}, "
                            f"older than {writer}'s write of row {key}: {writer} vanished"
                        )
            for key, value in op.done.rows:
                for writer, _ in written.get((key, value), []):
                    if writer != reader:
                        seen.setdefault(writer, (key, value))
    return None


Judge = Callable[[Trace], "str | None"]


def how_prevented(trace: Trace) -> str:
    """What stopped the anomaly, read from the trace: `40001`, `blocked`, or `snapshot`."""
    if any(done.sqlstate == "40001" for done in trace.done):
        return "40001"
    if any(done.waited_for for done in trace.done):
        return "blocked"
    if any(done.old_version for done in trace.done):
        return "snapshot"
    return "no conflict"


def judge(trace: Trace, rule: Judge) -> tuple[str, str | None, str]:
    """(result, how, why): `anomaly` with no how, or `prevented` and how; `why` says what was seen."""
    anomaly = rule(trace)
    if anomaly:
        return "anomaly", None, anomaly
    how = how_prevented(trace)
    return "prevented", how, WHY[how](trace)


def _raised(trace: Trace) -> str:
    done = next(d for d in trace.done if d.sqlstate == "40001")
    return f"{done.step.session} was refused: 40001 {done.message}"


def _blocked(trace: Trace) -> str:
    done = next(d for d in trace.done if d.waited_for)
    return f"{done.step} waited for {', '.join(done.waited_for)} to finish"


def _snapshot(trace: Trace) -> str:
    done = next(d for d in trace.done if d.old_version)
    return f"{done.step} returned {rows_text(done.rows)}: an older version than the newest"


WHY: dict[str, Callable[[Trace], str]] = {
    "40001": _raised,
    "blocked": _blocked,
    "snapshot": _snapshot,
    "no conflict": lambda trace: "no read or write met another transaction's",
}
