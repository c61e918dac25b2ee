"""The lab's own store and locks, each call announced to a conductor first.

A replay runs the domain's real code (`Bank.deposit`, the transfer
policies, `TransferDesk.audit`) in a lab whose store, guards and account
locks are wrapped here. The wrappers change nothing of what the calls do;
they hand each one to a conductor, which may pause the thread before it
(`stepper.Stepper`) or only write it down (`Rehearsal`):

- `SteppingStore`: every `read` and `write` of a balance;
- `SteppingInventory`: every `read` and `write` of a SKU's stock (the checkout);
- `SteppingGuardSet` hands out `SteppingGuard`s: every acquire and release
  of a deposit guard (the `unsafe` guard takes nothing, so it is not a step);
- `SteppingLockTable`: every acquire and release of an account lock, by
  transfers, audits and deposits alike.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..lab.guards import Guard, GuardSet, UnsafeGuard
from ..lab.locks import AccountLock, LockTable
from ..lab.shop import Inventory
from ..lab.store import Store
from .actors import Primitive


class Conductor(Protocol):
    def access(self, kind: str, target: str, action: Callable[[], Any], value: Any = None) -> Any: ...

    def acquire(self, primitive: Primitive, timeout: float | None) -> bool: ...

    def release(self, primitive: Primitive) -> None: ...


class SteppingStore:
    """A store whose reads and writes are steps; everything else is the wrapped store's."""

    def __init__(self, store: Store, conductor: Conductor):
        self._store = store
        self._conductor = conductor

    def read(self, account_id: str) -> int:
        return self._conductor.access("read", account_id, lambda: self._store.read(account_id))

    def write(self, account_id: str, balance: int) -> None:
        self._conductor.access("write", account_id, lambda: self._store.write(account_id, balance), value=balance)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class SteppingInventory:
    """The shop's stock, whose reads and writes are steps, as the store's are."""

    def __init__(self, inventory: Inventory, conductor: Conductor):
        self._inventory = inventory
        self._conductor = conductor

    def read(self, sku: str) -> int:
        return self._conductor.access("read", sku, lambda: self._inventory.read(sku))

    def write(self, sku: str, units: int) -> None:
        self._conductor.access("write", sku, lambda: self._inventory.write(sku, units), value=units)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inventory, name)


class GuardPrimitive(Primitive):
    """A deposit guard as the stepper sees it. `threading.Lock` serves waiters in no order: the stepper queues."""

    fair = False

    def __init__(self, guard: Guard):
        self.guard = guard
        self.key = ("guard", id(guard))
        self.label = guard.describe()
        self.permits = guard.permits

    def holders(self) -> dict[int, int]:
        return self.guard.holders()

    def try_now(self) -> bool:
        return self.guard.acquire(0)

    def wait(self, timeout: float | None) -> bool:
        return self.guard.acquire(timeout)

    def release(self) -> None:
        self.guard.release()


class SteppingGuard:
    """A guard whose acquire and release are steps; everything else (`excludes`, `reentrant`, the holders)
    is the wrapped guard's, so `hold` and `Bank` treat it as the guard itself."""

    def __init__(self, guard: Guard, conductor: Conductor):
        self._guard = guard
        self._primitive = GuardPrimitive(guard)
        self._conductor = conductor

    def acquire(self, timeout: float | None = None) -> bool:
        return self._conductor.acquire(self._primitive, timeout)

    def release(self) -> None:
        self._conductor.release(self._primitive)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._guard, name)


class SteppingGuardSet(GuardSet):
    """`GuardSet` whose guards announce their steps; `all()` still lists the real ones, for the operator."""

    def __init__(self, conductor: Conductor):
        super().__init__()
        self._conductor = conductor
        self._wrapped: dict[int, SteppingGuard] = {}

    def get(self, kind: str, key: str, permits: int = 1) -> Guard:
        guard = super().get(kind, key, permits)
        if isinstance(guard, UnsafeGuard):
            return guard  # takes nothing: not a step
        with self._lock:
            return self._wrapped.setdefault(id(guard), SteppingGuard(guard, self._conductor))  # type: ignore[return-value]


class AccountPrimitive(Primitive):
    """An account lock as the stepper sees it; it serves its waiters in order itself."""

    fair = True

    def __init__(self, table: SteppingLockTable, lock: AccountLock, check_after: float | None, patient: bool):
        self.table = table
        self.lock = lock
        self.check_after = check_after
        self.patient = patient
        self.key = ("account", lock.label)
        self.label = lock.describe()

    def holders(self) -> dict[int, int]:
        return self.lock.holders()

    def try_now(self) -> bool:
        return LockTable._acquire(self.table, self.lock, 0, None, self.patient)

    def wait(self, timeout: float | None) -> bool:
        """The real wait; only a wait that closes a cycle looks for one, so the victim is the same every run."""
        check_after = self.check_after if self.table.closes_cycle(self.lock.label) else None
        return LockTable._acquire(self.table, self.lock, timeout, check_after, self.patient)

    def release(self) -> None:
        LockTable._release(self.table, self.lock)


class SteppingLockTable(LockTable):
    """The account locks, each acquire and release announced; queues, graph and detector are `LockTable`'s."""

    def __init__(self, account_ids: Sequence[str], conductor: Conductor):
        super().__init__(account_ids)
        self._conductor = conductor

    def _acquire(self, lock: AccountLock, timeout: float | None, check_after: float | None, patient: bool) -> bool:
        return self._conductor.acquire(AccountPrimitive(self, lock, check_after, patient), timeout)

    def _release(self, lock: AccountLock) -> None:
        self._conductor.release(AccountPrimitive(self, lock, None, True))

    def closes_cycle(self, account: str) -> bool:
        """Would the calling thread, waiting for `account` now, close a cycle of waits?

        Follows the wait-for graph from the lock's holder: the thread it
        waits for, that thread's holder, and so on. Coming back to the
        caller is a cycle; a thread that runs, or only tries, ends the path.
        """
        graph = self.snapshot()
        holder = {lock["account"]: lock["holder"]["ident"] for lock in graph["locks"] if lock["holder"]}
        waits = {edge["waiter"]["ident"]: edge for edge in graph["wait_for"]}
        me = threading.get_ident()
        ident, seen = holder.get(account), set()
        while ident is not None and ident not in seen:
            if ident == me:
                return True
            seen.add(ident)
            edge = waits.get(ident)
            if edge is None or edge["trying"]:
                return False
            ident = holder.get(edge["account"])
        return False


class Rehearsal:
    """A conductor that pauses nobody: it writes down each call of one thread running alone.

    Alone, a thread waits only for itself (a nested acquire of a `Lock`).
    A rehearsal lets such an acquire through without taking the lock, and
    skips its release, so it records the steps the thread would take if it
    could: the steps a schedule names.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._pretended: Counter[tuple] = Counter()

    def access(self, kind: str, target: str, action: Callable[[], Any], value: Any = None) -> Any:
        self.calls.append((kind, target))
        return action()

    def acquire(self, primitive: Primitive, timeout: float | None) -> bool:
        self.calls.append(("acquire", primitive.label))
        if not primitive.try_now():
            self._pretended[primitive.key] += 1
        return True

    def release(self, primitive: Primitive) -> None:
        self.calls.append(("release", primitive.label))
        if self._pretended[primitive.key]:
            self._pretended[primitive.key] -= 1
        else:
            primitive.release()
