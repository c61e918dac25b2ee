"""What the operator can do to the in-process locks of any lab, memory or postgres.

Break the deadlocks nobody gives up (`lock_timeout_ms` none) and name what
a blocked reset waits for. Both `Lab` and `bankapp.postgres.PostgresLab`
inherit it; it needs only their `locks` (a `LockTable`) and `guards`.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from .admission import Operation
from .guards import DeadlockVictim, Guard, GuardSet, GuardWait
from .locks import LockTable


class OperatorActions:
    """What the operator can do to the in-process locks of any lab: break the deadlocks nobody gives up,
    and name what a blocked reset waits for. Needs `self.locks` (a `LockTable`) and `self.guards`."""

    locks: LockTable
    guards: GuardSet

    def break_deadlocks(self) -> list[dict[str, Any]]:
        """The operator's way out of the deadlocks nobody gives up: their records, each with its victim.

        A cycle of account locks loses its youngest wait
        (`LockTable.break_deadlocks`); a guard all of whose holders wait for
        it (a batch deposit under `lock`) loses one of them
        (`Guard.break_self_deadlock`). Each victim raises `DeadlockVictim`,
        rolls back, lets go, and answers 409 as a detected victim does.
        """
        broken = self.locks.break_deadlocks()
        for guard in self.guards.all():
            error = guard.break_self_deadlock(functools.partial(self._self_deadlock, guard))
            if error is not None:
                broken.append(error.deadlock)
        return broken

    def _self_deadlock(self, guard: Guard, stuck: list[GuardWait], victim: GuardWait) -> DeadlockVictim:
        what = guard.describe()
        steps = [{"thread": w.thread, "ident": w.ident, "holds": [what], "waits_for": what} for w in stuck]
        return DeadlockVictim(self.locks.record_broken(steps, [guard.label], victim.since, victim.thread))

    def whereabouts(self, operations: list[Operation]) -> list[dict[str, Any]]:
        """Each operation in flight with what it holds and waits for: what a blocked reset names."""
        graph = self.locks.snapshot()
        now = time.monotonic()
        described = []
        for op in operations:
            holds = [f"account lock of {lock['account']}" for lock in graph["locks"] if _is(lock["holder"], op)]
            waits = [f"account lock of {edge['account']}" for edge in graph["wait_for"] if _is(edge["waiter"], op)]
            for guard in self.guards.all():
                holds += [guard.describe()] if op.ident in guard.holders() else []
                waits += [guard.describe()] if op.ident in guard.waiting() else []
            described.append(
                {
                    "operation": op.name,
                    "thread": op.thread,
                    "running_ms": round((now - op.since) * 1000, 1),
                    "holds": holds,
                    "waits_for": waits,
                }
            )
        return described


def _is(thread: dict[str, Any] | None, operation: Operation) -> bool:
    return thread is not None and thread["ident"] == operation.ident
