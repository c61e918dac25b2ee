"""The shop: checkouts admitted under `checkout_guard`, paid at a slow gateway.

A checkout reserves stock, then pays at a payment gateway that can only
serve so many at once. The guard decides how many checkouts run together:

- `unsafe`: no limit. Everyone gets in, the gateway overloads and every
  checkout gets slower; stock is reserved with no guard at all (read, wait
  `race_window_ms`, write), so two checkouts that read the same stock both
  sell it: the 100-unit flash sale sells more than 100.
- `lock` / `rlock`: one global lock around the whole checkout. Safe, and one
  at a time: the gateway idles at 1/`gateway_capacity` of what it could do.
- `semaphore`: `BoundedSemaphore(capacity)` admits `capacity` at once, the
  rest wait (see `bankapp.admission`). A semaphore with more than one permit
  does not exclude, so stock is reserved under a short lock of its own: the
  semaphore limits how many, the lock keeps the count right. Each primitive
  does the one job it is for.

`Shop` knows nothing of HTTP; unit tests drive it with plain threads.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..settings import RESERVED_THREADS, SEMAPHORE_GUARDS, Config
from .admission import Admission, Gate, ServerBusy
from .admission.adaptive import AdaptiveGuard
from .bank import race_window
from .guards import Guard, GuardSet, SemaphoreGuard, hold
from .reservoir import Reservoir

#: SKU -> units in stock after a reset.
CATALOGUE = {"widget": 1_000_000, "flash-sale": 100}


class UnknownSku(KeyError):
    def __init__(self, sku: str):
        super().__init__(sku)
        self.sku = sku

    def __str__(self) -> str:
        return f"no SKU {self.sku!r}; the catalogue has {', '.join(CATALOGUE)}"


class OutOfStock(Exception):
    def __init__(self, sku: str, available: int, quantity: int):
        super().__init__(f"SKU {sku} has {available} units in stock, fewer than the {quantity} asked for")
        self.sku = sku
        self.available = available
        self.quantity = quantity


@dataclass(frozen=True)
class Order:
    order_id: str
    sku: str
    quantity: int
    remaining: int
    guard: str
    wait_ms: float
    gateway_ms: float
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Inventory:
    """Units per SKU. Like the bank's store, single reads and writes only:
    the read-modify-write, and so the race, belongs to the shop."""

    def __init__(self, catalogue: dict[str, int]):
        self.initial = dict(catalogue)
        self.reset()

    def exists(self, sku: str) -> bool:
        return sku in self.initial

    def read(self, sku: str) -> int:
        return self._units[sku]

    def write(self, sku: str, units: int) -> None:
        self._units[sku] = units

    def snapshot(self) -> dict[str, int]:
        return dict(self._units)

    def reset(self) -> None:
        self._units = dict(self.initial)


def gateway_time_ms(service_time_ms: float, in_gateway: int, gateway_capacity: int) -> float:
    """`service_time_ms` up to `gateway_capacity` at once; beyond, it grows in proportion.

    With 8 places and 24 checkouts inside, each takes 3 x as long: the
    gateway serves the same payments per second however many you push at
    it, so pushing more only makes everyone wait longer (Little's law).
    """
    return service_time_ms * max(1.0, in_gateway / gateway_capacity)


class PaymentGateway:
    """A stand-in for a real downstream (a card processor, a database): each
    payment sleeps `gateway_time_ms(...)`, computed from how many payments
    are inside when it enters. Sleeping releases the GIL, as waiting on a
    socket would, so many threads can be "at the gateway" at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_use = 0
        self.peak_in_use = 0

    def reset(self) -> None:
        with self._lock:
            self.peak_in_use = self.in_use

    def pay(self, config: Config) -> float:
        """Take one payment; returns the modelled time in ms."""
        load = self._enter()
        try:
            modelled = gateway_time_ms(config.service_time_ms, load, config.gateway_capacity)
            if modelled > 0:
                time.sleep(modelled / 1000)
            return modelled
        finally:
            self._leave()

    def _enter(self) -> int:
        """One more payment inside; how many are inside now (a fleet's store counts elsewhere)."""
        with self._lock:
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            return self.in_use

    def _leave(self) -> None:
        with self._lock:
            self.in_use -= 1


class SalesLedger:
    """What the shop sold, exact under any guard (its own small lock)."""

    def __init__(self, catalogue: dict[str, int], latency_samples: int = 10_000):
        self._lock = threading.Lock()
        self._initial = dict(catalogue)
        self._latency = Reservoir(latency_samples)
        self._order_ids = itertools.count(1)  # never reset: an order id names one order forever
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.completed = 0
            self.out_of_stock = 0
            self.failed = 0
            self.sold: Counter[str] = Counter({sku: 0 for sku in self._initial})
            self._latency.clear()

    def next_order_id(self) -> str:
        with self._lock:
            return f"ord-{next(self._order_ids):06d}"

    def reserved(self, sku: str, quantity: int) -> None:
        with self._lock:
            self.sold[sku] += quantity

    def completed_order(self, latency_ms: float) -> None:
        with self._lock:
            self.completed += 1
            self._latency.add(latency_ms)

    def refused_out_of_stock(self) -> None:
        with self._lock:
            self.out_of_stock += 1

    def failed_after_admission(self) -> None:
        with self._lock:
            self.failed += 1

    def report(self) -> dict[str, Any]:
        """`oversold` is in units: sold beyond what there was, summed over SKUs."""
        with self._lock:
            return {
                "completed": self.completed,
                "out_of_stock": self.out_of_stock,
                "failed": self.failed,
                "sold": dict(self.sold),
                "oversold": sum(max(0, self.sold[sku] - units) for sku, units in self._initial.items()),
                "latency_ms": self._latency.summary(),
            }


class Stock(Protocol):
    """What a checkout asks of the stock: `Inventory` here, `StockTable` in PostgreSQL."""

    initial: dict[str, int]

    def exists(self, sku: str) -> bool: ...

    def read(self, sku: str) -> int: ...

    def write(self, sku: str, units: int) -> None: ...

    def snapshot(self) -> dict[str, int]: ...

    def reset(self) -> None: ...


class Sales(Protocol):
    """What a checkout tells the sales ledger: `SalesLedger` here, `DatabaseSales` in PostgreSQL."""

    def next_order_id(self) -> str: ...

    def reserved(self, sku: str, quantity: int) -> None: ...

    def completed_order(self, latency_ms: float) -> None: ...

    def refused_out_of_stock(self) -> None: ...

    def failed_after_admission(self) -> None: ...

    def reset(self) -> None: ...


StockT = TypeVar("StockT", bound=Stock)
SalesT = TypeVar("SalesT", bound=Sales)


class Checkouts(Generic[StockT, SalesT]):
    """Checkouts under the guard `checkout_guard` names, over any stock and sales ledger (`Shop` is the memory one)."""

    def __init__(self, config: Callable[[], Config], guards: GuardSet, gate: Gate, inventory: StockT, ledger: SalesT):
        self._config = config
        self.guards = guards
        self.gate = gate
        self.inventory = inventory
        self.admission = Admission()
        self.gateway = PaymentGateway()
        self.ledger = ledger

    def admission_guard(self, config: Config) -> Guard:
        """The one guard every checkout passes under the settings of this request."""
        kind = config.checkout_guard
        guard = self.guards.get(kind, "checkout", config.capacity if kind in SEMAPHORE_GUARDS else 1)
        if isinstance(guard, AdaptiveGuard):
            guard.limiter.bound(config.threads - RESERVED_THREADS - config.max_waiting)
        return guard

    def current_limit(self, config: Config) -> int | None:
        """Checkouts admitted at once now: the adaptive guard's limit, or the fixed one (None: no limit)."""
        guard = self.admission_guard(config)
        return guard.limit if isinstance(guard, AdaptiveGuard) else config.admission_limit()

    def stock_guard(self, sku: str, config: Config) -> Guard:
        """What guards one SKU's read-modify-write.

        Under `semaphore` several checkouts are in at once, so stock needs
        its own lock, held only while reserving (not while paying). Under
        `lock` the global lock already lets one in. Under `unsafe`, nothing.
        """
        several = config.checkout_guard in SEMAPHORE_GUARDS
        return self.guards.get("lock" if several else "unsafe", f"stock:{sku}")

    def catalog(self) -> list[dict[str, Any]]:
        stock = self.inventory.snapshot()
        return [
            {"sku": sku, "stock": stock[sku], "initial_stock": units} for sku, units in self.inventory.initial.items()
        ]

    def checkout(self, sku: str, quantity: int) -> Order:
        """Admit, reserve `quantity` of `sku`, pay; raises `UnknownSku`,
        `OutOfStock` or `AdmissionRejected` (and then nothing changed)."""
        config = self._config()
        arrived = time.perf_counter()
        if not self.inventory.exists(sku):
            raise UnknownSku(sku)
        guard = self.admission_guard(config)
        capacity = self.current_limit(config)
        try:
            entered = self.gate.enter("checkout")  # the door: see `admission`
        except ServerBusy:
            raise self.admission.turned_away("server-busy", guard, capacity, config.max_waiting) from None
        with entered:  # counted inside the gate, so a reset never splits an order from its record
            with self.admission.admit(
                guard, capacity=capacity, timeout=config.admission_timeout(), max_waiting=config.max_waiting
            ) as wait_ms:
                try:
                    remaining = self._reserve(sku, quantity, config)
                    gateway_ms = self.gateway.pay(config)
                except OutOfStock:
                    self.ledger.refused_out_of_stock()
                    raise
                except BaseException:
                    self.ledger.failed_after_admission()
                    raise
                # counted before it leaves: a snapshot never sees it neither in flight nor done
                latency_ms = (time.perf_counter() - arrived) * 1000
                self.ledger.completed_order(latency_ms)
            order_id = self.ledger.next_order_id()
        return Order(
            order_id=order_id,
            sku=sku,
            quantity=quantity,
            remaining=remaining,
            guard=guard.name,
            wait_ms=round(wait_ms, 3),
            gateway_ms=round(gateway_ms, 3),
            latency_ms=round(latency_ms, 3),
        )

    def _reserve(self, sku: str, quantity: int, config: Config) -> int:
        """Check the stock covers `quantity`, then take it: check, then act.

        Between the read and the write lies `race_window_ms`; unguarded, two
        checkouts that read the same stock both pass the check and both
        write their own remainder, and more is sold than there was.
        """
        with hold(self.stock_guard(sku, config), config.lock_timeout()):
            available = self.inventory.read(sku)
            if available < quantity:
                raise OutOfStock(sku, available, quantity)
            race_window(config)
            remaining = available - quantity
            self.inventory.write(sku, remaining)
            self.ledger.reserved(sku, quantity)
        return remaining

    def available_permits(self, config: Config) -> int | None:
        """The semaphore's own counter, or None when the guard is no semaphore."""
        guard = self.admission_guard(config)
        return guard.available_permits if isinstance(guard, SemaphoreGuard) else None

    def reset(self) -> None:
        """Restore stock and zero the counters and peaks."""
        self.inventory.reset()
        self.admission.reset()
        self.gateway.reset()
        self.ledger.reset()
        config = self._config()
        guard = self.admission_guard(config)
        if isinstance(guard, AdaptiveGuard):
            guard.limiter.restart(config.capacity)  # a new start: from capacity, no baseline


class Shop(Checkouts[Inventory, SalesLedger]):
    """The checkouts of the memory lab: stock and sales in this process."""

    def __init__(self, config: Callable[[], Config], guards: GuardSet, gate: Gate, inventory: Inventory | None = None):
        inventory = Inventory(CATALOGUE) if inventory is None else inventory
        super().__init__(config, guards, gate, inventory, SalesLedger(inventory.initial))

    def report(self) -> dict[str, Any]:
        config = self._config()
        return {
            "guard": config.checkout_guard,
            "capacity": config.admission_limit(),
            "limit": self.current_limit(config),
            "available_permits": self.available_permits(config),
            "max_waiting": config.max_waiting,
            "gateway_capacity": config.gateway_capacity,
            "gateway_in_use": self.gateway.in_use,
            "gateway_peak_in_use": self.gateway.peak_in_use,
            **self.admission.report(),
            **self.ledger.report(),
            "stock": self.inventory.snapshot(),
        }
