"""What each exercise's threads do with the trainee's code, and how the end of one schedule is judged.

A `Scenario` is the shape `explore_threads` takes: `setup(subject)` makes
a fresh `State` around the trainee's code (`subject`: their module), each
worker is one thread's body, and `judge(state)` names the outcome: `ok`,
or what went wrong in the lab's words (`lost-update`, `over-capacity`,
...). Shared data the threads race on is a `Cell` (its `get` and `set`
are the steps `a.read` and `a.write`); the few bookkeeping steps the
judge needs (`a.enter`, `a.arrive`) are steps too, each one atomic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..explore import engine
from ..explore.clock import current as current_clock
from ..explore.primitives import Cell, Event, Lock
from ..explore.threads import _run

#: The balance every account opens with, in cents.
OPENING = 100
#: admission: the timeout each try_enter is given, and how late a rejection may come past it (SPEC: 50 ms).
ADMISSION_TIMEOUT_S, PROMPT_S = 0.1, 0.05


@dataclass
class State:
    """One schedule's world: the trainee's object(s), the shared cells, and what the judge noted."""

    subject: Any = None
    cells: dict[str, Cell] = field(default_factory=dict)
    locks: dict[str, Lock] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)  # exceptions and busy waits, each with its line
    findings: list[tuple[str, str]] = field(default_factory=list)  # (outcome, what happened, in words)
    inside: int = 0
    peak: int = 0
    arrived: dict[str, int] = field(default_factory=dict)
    current: dict[str, str] = field(default_factory=dict)  # thread -> its arrival now (a1, a2, b1)
    waiting_on_arrival: dict[str, set[str]] = field(default_factory=dict)
    granted: set[str] = field(default_factory=set)
    waited: set[str] = field(default_factory=set)
    answered: int = 0
    everyone_answered: Any = None
    capacity: int = 1
    probed: int = 0  # places taken at the end, every thread done
    traced: Any = None  # the tracer's `traced`: the end's probe runs the trainee's lines as steps too

    def find(self, outcome: str, words: str) -> None:
        self.findings.append((outcome, words))

    def observe(self) -> None:
        """At every step: note which arrival is blocked inside an acquire (a waiter that must not be overtaken)."""
        execution = engine.current()
        if execution is None:
            return
        for runner in execution.runners.values():
            key = self.current.get(runner.name)
            if runner.state == engine.BLOCKED and key is not None and key not in self.granted:
                self.waited.add(key)


def me() -> str:
    execution = engine.current()
    runner = execution._runner() if execution is not None else None
    return runner.name if runner is not None else "?"


def step(kind: str, target: str, action: Callable[[], Any], words: Callable[[Any], str]) -> Any:
    """One atomic step of the judge's own (`a.enter`): `action` runs with nobody else between."""
    execution = engine.current()
    runner = execution._runner() if execution is not None else None
    if execution is None or runner is None:
        return action()
    execution._enter(runner, kind, target)
    execution._touch(("data", target), "w")
    result = action()
    execution._say(runner, words(result))
    return result


@dataclass(frozen=True)
class Scenario:
    name: str
    does: str
    setup: Callable[[ModuleType], State]
    workers: list[Callable[[State], None]]
    judge: Callable[[State], str]
    slow: bool = False  # explored by the slow tests (and on demand), not by every check


def judged(state: State) -> str:
    """The outcome of a schedule: an exception or a busy wait first (said with its line), then the findings."""
    if state.problems:
        return state.problems[0]["kind"]
    return state.findings[0][0] if state.findings else "ok"


# deposits: deposit-guard, reentrant-guard, fair-lock


def _guarded(state: State) -> Any:
    return state.subject


def deposit(state: State, amount: int = 10) -> None:
    """A deposit as the bank makes it: acquire, read, write, release."""
    guard = _guarded(state)
    if not guard.acquire():
        state.find("refused", f"{me()}'s acquire() with no timeout said False: its deposit was refused")
        return
    try:
        balance = state.cells["balance"]
        balance.set(balance.get() + amount)
    finally:
        guard.release()


def _deposits_setup(threads: int) -> Callable[[ModuleType], State]:
    def setup(module: ModuleType) -> State:
        return State(subject=module.Guard(), cells={"balance": Cell(OPENING, "balance")})

    return setup


def _judge_deposits(amounts: list[int]) -> Callable[[State], str]:
    def judge(state: State) -> str:
        final, expected = state.cells["balance"].value, OPENING + sum(amounts)
        if final != expected:
            state.find(
                "lost-update", f"the balance is {final}, not {expected}: a write from a stale read erased a deposit"
            )
        return judged(state)

    return judge


def _deposit_scenario(threads: int, slow: bool = False) -> Scenario:
    amounts = [10, 20, 30][:threads]
    return Scenario(
        "deposit",
        f"{threads} deposits ({', '.join(map(str, amounts))}) into one account, each acquire, read, write, release",
        _deposits_setup(threads),
        [functools.partial(deposit, amount=a) for a in amounts],
        _judge_deposits(amounts),
        slow,
    )


def batch(state: State) -> None:
    """A batch: the guard held throughout, each of its two deposits acquiring it again."""
    guard = _guarded(state)
    if not guard.acquire():
        state.find("refused", "the batch's acquire() with no timeout said False")
        return
    try:
        balance = state.cells["balance"]
        start = balance.get()
        deposit(state, 1)
        deposit(state, 2)
        end = balance.get()
        if end != start + 3:
            state.find("overlap", f"another thread got in while the batch held the guard: {start} + 3 is {end}")
    finally:
        guard.release()


def _batch_scenario() -> Scenario:
    return Scenario(
        "batch",
        "a batch (acquire; two deposits, each acquire, read, write, release; release) beside a deposit of 10",
        _deposits_setup(2),
        [batch, lambda s: deposit(s, 10)],
        _judge_deposits([1, 2, 10]),
    )


def fair_deposit(state: State) -> None:
    """A deposit that says when it arrives and when it is let in: a waiter must not be overtaken."""
    name = me()

    def arrive() -> str:
        key = f"{name}{sum(1 for k in state.arrived if k[0] == name) + 1}"  # a1, then a2: each arrival
        state.current[name] = key
        state.arrived[key] = len(state.arrived)
        state.observe()
        state.waiting_on_arrival[key] = {w for w in state.waited if w not in state.granted}
        return key

    key = step("arrive", "arrivals", arrive, lambda k: f"{name} arrives ({k})")
    guard = _guarded(state)
    if not guard.acquire():
        state.find("refused", f"{name}'s acquire() with no timeout said False")
        return

    def grant() -> list[str]:
        state.granted.add(key)
        return sorted(w for w in state.waiting_on_arrival[key] if w not in state.granted)

    overtaken = step("granted", "arrivals", grant, lambda _: f"{name} has the guard ({key})")
    for waiter in overtaken:
        state.find("overtaken", f"{key} got the guard before {waiter}, which was already waiting when {key} arrived")
    try:
        balance = state.cells["balance"]
        balance.set(balance.get() + 10)
    finally:
        guard.release()


def fair_deposit_twice(state: State) -> None:
    """Deposit, release, and come straight back: the newcomer that may barge in front of a waiter."""
    fair_deposit(state)
    fair_deposit(state)


def _fair_scenario() -> Scenario:
    return Scenario(
        "fair",
        "thread a deposits 10 twice (releases, then comes back at once), thread b deposits 10 once; each deposit "
        "arrives, acquires, reads, writes, releases",
        _deposits_setup(2),
        [fair_deposit_twice, fair_deposit],
        _judge_deposits([10, 10, 10]),
    )


# checkouts: counting-semaphore, admission


def enter_and_leave(state: State) -> None:
    """Inside: count in and out, each an atomic step, and keep the peak."""

    def enter() -> int:
        state.inside += 1
        state.peak = max(state.peak, state.inside)
        return state.inside

    def leave() -> int:
        state.inside -= 1
        return state.inside

    step("enter", "inside", enter, lambda n: f"{me()} is inside ({n} inside)")
    if state.everyone_answered is not None:
        state.everyone_answered.wait()  # the one inside stays until every try has its answer
    step("exit", "inside", leave, lambda n: f"{me()} is out ({n} inside)")


def checkout(state: State) -> None:
    semaphore = state.subject
    if not semaphore.acquire():
        state.find("refused", f"{me()}'s acquire() with no timeout said False")
        return
    try:
        enter_and_leave(state)
    finally:
        semaphore.release()


def _capacity_left(state: State, take: Callable[[], bool]) -> None:
    """After every thread: exactly `capacity` places free. Tried by one more explored thread, alone, taking
    places with a zero timeout until refused (so a wait that ignores its timeout is a deadlock, not a hang)."""

    def probe(state: State) -> None:
        while state.probed <= state.capacity and take():
            state.probed += 1

    body = state.traced(probe) if state.traced is not None else probe
    execution = _run(lambda: state, [body], lambda enabled, moves: enabled[0])
    taken = state.probed
    if execution.end is not None:
        state.find("deadlock", f"at the end, every thread done, a try with timeout 0 waited for ever ({taken} taken)")
    elif execution.runners["a"].error is not None:
        error = execution.runners["a"].error
        state.find("error", f"at the end, a try with timeout 0 raised {type(error).__name__}: {error}")
    elif taken < state.capacity:
        state.find("permit-lost", f"at the end only {taken} of {state.capacity} places could be taken: one was lost")
    elif taken > state.capacity:
        state.find("over-capacity", f"at the end more than {state.capacity} places could be taken: one was made")


def _judge_checkouts(state: State, take: Callable[[], bool]) -> str:
    if state.peak > state.capacity:
        state.find("over-capacity", f"{state.peak} were inside at once, over the capacity of {state.capacity}")
    if not state.problems and not state.findings:
        _capacity_left(state, take)
    return judged(state)


def _semaphore_scenario(threads: int, permits: int, slow: bool = False) -> Scenario:
    def setup(module: ModuleType) -> State:
        return State(subject=module.Semaphore(permits), capacity=permits)

    return Scenario(
        "checkout",
        f"{threads} checkouts through Semaphore({permits}): acquire, inside, release",
        setup,
        [checkout] * threads,
        lambda state: _judge_checkouts(state, lambda: bool(state.subject.acquire(timeout=0))),
        slow,
    )


def admitted(state: State) -> None:
    admission, clock = state.subject, current_clock()
    started = clock.now if clock else 0.0
    entered = admission.try_enter(ADMISSION_TIMEOUT_S)
    took = (clock.now if clock else 0.0) - started

    def answer() -> int:
        state.answered += 1
        return state.answered

    if not entered and took > ADMISSION_TIMEOUT_S + PROMPT_S:
        state.find(
            "slow-rejection",
            f"{me()} was told no {took * 1000:.0f} ms after it asked, past the timeout of "
            f"{ADMISSION_TIMEOUT_S * 1000:.0f} ms + {PROMPT_S * 1000:.0f} ms",
        )
    said = "in" if entered else "told no"
    answered = step("answer", "answers", answer, lambda n: f"{me()} is {said} after {took * 1000:.0f} ms")
    if answered == len(state.arrived):
        state.everyone_answered.set()  # a step of its own (set), after the answer's
    if entered:
        try:
            enter_and_leave(state)
        finally:
            admission.leave()


def _admission_scenario(threads: int, capacity: int, slow: bool = False) -> Scenario:
    def setup(module: ModuleType) -> State:
        state = State(subject=module.Admission(capacity), capacity=capacity, everyone_answered=Event())
        state.arrived = {name: i for i, name in enumerate("abc"[:threads])}
        return state

    return Scenario(
        "checkout",
        f"{threads} checkouts through Admission({capacity}), try_enter({ADMISSION_TIMEOUT_S:g}); whoever is in "
        "stays until every try has its answer",
        setup,
        [admitted] * threads,
        lambda state: _judge_checkouts(state, lambda: bool(state.subject.try_enter(0))),
        slow,
    )


# transfers: transfer-order


def transfer(state: State, source: str, target: str) -> None:
    order = state.subject.lock_order(source, target)
    if not isinstance(order, tuple) or len(order) != 2 or sorted(order) != sorted((source, target)):
        raise ValueError(f"lock_order({source!r}, {target!r}) returned {order!r}: the two ids, once each, as a tuple")
    first, second = order
    with state.locks[first], state.locks[second]:
        cells = state.cells
        cells[source].set(cells[source].get() - 5)
        cells[target].set(cells[target].get() + 5)


def _transfer_scenario(threads: int, slow: bool = False) -> Scenario:
    accounts = [f"acc-{i:02d}" for i in range(threads)]

    def setup(module: ModuleType) -> State:
        return State(
            subject=module,
            locks={account: Lock() for account in accounts},
            cells={account: Cell(OPENING, account) for account in accounts},
        )

    def judge(state: State) -> str:
        total = sum(cell.value for cell in state.cells.values())
        if total != OPENING * threads:
            state.find("total-changed", f"the total is {total}, not {OPENING * threads}")
        return judged(state)

    pairs = [(accounts[i], accounts[(i + 1) % threads]) for i in range(threads)]
    return Scenario(
        "transfer",
        "transfers of 5 in a ring: " + ", ".join(f"{s} to {t}" for s, t in pairs),
        setup,
        [functools.partial(transfer, source=s, target=t) for s, t in pairs],
        judge,
        slow,
    )


SCENARIOS: dict[str, list[Scenario]] = {
    "deposit-guard": [_deposit_scenario(2), _deposit_scenario(3, slow=True)],
    "reentrant-guard": [_batch_scenario(), _deposit_scenario(2)],
    "counting-semaphore": [_semaphore_scenario(2, 1), _semaphore_scenario(3, 1, slow=True)],
    "transfer-order": [_transfer_scenario(2), _transfer_scenario(3, slow=True)],
    "fair-lock": [_fair_scenario()],
    "admission": [_admission_scenario(2, 1), _admission_scenario(3, 1, slow=True)],
}
