"""One replay: a scratch lab, its threads rehearsed, the schedule checked, run, and the result.

A replay never touches the bank it runs in. It builds a `Lab` of its own,
with its own `MemoryStore`, guards and account locks, under the settings
in force (the guard or policy replaced by the one asked for), so the
server's balances and counters stay as they are, and a replay gives the
same result every run, whatever the server is doing meanwhile. With the
postgres store the replay runs in memory too, under the Python guards; the
web route sends the database guards and the desk's transfers to
`bankapp.explore.db.replay`, which runs the SQL steps on the database.

First each thread is *rehearsed*, alone, in a lab of its own: its steps
are whatever the domain code calls (`stepping.Rehearsal`). The schedule is
checked against those steps, and refused (`InvalidSchedule`) before
anything runs. Then the threads run together in one more lab, step by step
(`stepper.Stepper`).
"""

from __future__ import annotations

import contextlib
import functools
import threading

from ..lab.lab import Lab
from ..lab.shop import CATALOGUE, Inventory
from ..lab.store import MemoryStore
from ..settings import Config
from .actors import Actor, error_record, not_started
from .scenarios import SCENARIOS, Job, Scenario, default_schedule
from .schedule import LOCK_KINDS, THREAD_NAMES, InvalidSchedule, Step, group, parse, thread_count, tokens
from .stepper import RUN_LIMIT_S, Stepper
from .stepping import Conductor, Rehearsal, SteppingGuardSet, SteppingInventory, SteppingLockTable, SteppingStore

#: How long a replay watches threads that nothing can free (`lock_timeout_ms` none), before it breaks
#: their deadlock as the operator does; and the most it waits for any lock timeout.
WATCH_S = 1.0
LONGEST_WAIT_S = 30.0
#: One replay at a time in a process: each holds a server thread until it ends.
_one_at_a_time = threading.Lock()


class InvalidReplay(ValueError):
    """The scenario or guard asked for does not exist; `field` names which."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class ReplayBusy(RuntimeError):
    """Another replay is running in this process."""


def scratch_lab(config: Config, conductor: Conductor) -> Lab:
    """A lab of the replay's own: a new memory store, guards and account locks, each announcing its steps."""
    store = SteppingStore(MemoryStore(config.account_ids, config.initial_balance), conductor)
    return Lab(
        config,
        store=store,
        inventory=SteppingInventory(Inventory(CATALOGUE), conductor),  # type: ignore[arg-type]
        guards=SteppingGuardSet(conductor),
        locks=SteppingLockTable(config.account_ids, conductor),
    )


def rehearse(config: Config, job: Job) -> list[Step]:
    """The steps of `job` run alone, from the opening balances (without the race window: it changes no step)."""
    conductor = Rehearsal()
    lab = scratch_lab(config.model_copy(update={"race_window_ms": 0}), conductor)
    with contextlib.suppress(Exception):  # alone, a thread may still be refused: the steps it took stand
        job.run(lab)
    return group(conductor.calls)


def replay_config(config: Config, scenario: Scenario, guard: str | None, threads: int | None = None) -> Config:
    """The settings in force with the guard (or policy) of the replay, on the memory store, and those the
    scenario sets for `threads` threads (a checkout's capacity)."""
    chosen = guard if guard is not None else getattr(config, scenario.setting)
    if chosen not in scenario.guards:
        what = "deposit guards" if scenario.setting == "deposit_guard" else "transfer policies"
        known = ", ".join(scenario.guards[:-1]) + " or " + scenario.guards[-1]
        raise InvalidReplay(f"guard: {scenario.name} runs under the {what} {known}, not {chosen!r}", "guard")
    own = scenario.settings(threads or scenario.least) if scenario.settings else {}
    return config.model_copy(
        update={scenario.setting: chosen, "store": "memory", "database_url": None, "workers": 1, **own}
    )


def replay(config: Config, scenario_name: str, guard: str | None = None, schedule: str | None = None) -> dict:
    """Run `scenario_name` under `guard` in the order of `schedule` (None: the scenario's own); the result.

    Raises `InvalidReplay` (unknown scenario or guard) or `InvalidSchedule`
    before anything runs, `ReplayBusy` if another replay is running.
    """
    scenario = SCENARIOS.get(scenario_name)
    if scenario is None:
        raise InvalidReplay(f"scenario: no scenario {scenario_name!r}; known: {', '.join(SCENARIOS)}", "scenario")
    n = scenario.least if schedule is None else thread_count(schedule, scenario.least, scenario.most)
    config = replay_config(config, scenario, guard, n)
    jobs = dict(zip(THREAD_NAMES, scenario.jobs(config, n), strict=False))
    steps = {name: rehearse(config, job) for name, job in jobs.items()}
    if schedule is None:
        named = {name: [s.kind for s in each if s.kind not in LOCK_KINDS] for name, each in steps.items()}
        schedule = default_schedule(scenario, named)
    entries, locks_named = parse(schedule, steps, scenario.least, scenario.most)
    if not _one_at_a_time.acquire(blocking=False):
        raise ReplayBusy("another replay is running in this server; try again when it has ended")
    try:
        return _run(config, scenario, jobs, steps, entries, locks_named, " ".join(tokens(schedule)))
    finally:
        _one_at_a_time.release()


def _run(config, scenario, jobs, steps, entries, locks_named, schedule) -> dict:
    actors = []
    for name in locks_named:
        actor = Actor(name, jobs[name].does, operation=not_started, steps=steps[name])
        actor.plan(locks_named[name])
        actors.append(actor)
    timeout = config.lock_timeout()
    # a lock timeout (or the deadlock detector) ends every wait but a deadlock nobody may give up
    watch = (WATCH_S + 2 * config.deadlock_check_ms / 1000) if timeout is None else (timeout + 1)
    stuck_limit = min(LONGEST_WAIT_S, watch)
    stepper = Stepper(
        actors,
        settle_limit=config.race_window_ms / 1000 + RUN_LIMIT_S,
        stuck_limit=stuck_limit,
        unstick=lambda: lab.break_deadlocks(),
    )
    lab = scratch_lab(config, stepper)
    for actor in actors:
        actor.operation = functools.partial(jobs[actor.name].run, lab)
    try:
        stepper.run(entries)
    finally:
        stepper.abort("the replay ended")
        for actor in actors:  # each has ended, or ends now that the stepper stopped
            if actor.thread is not None:
                actor.thread.join(stuck_limit)
    answers = [_answer(actor, jobs[actor.name]) for actor in actors]
    final = _final(lab, steps)
    return {
        "scenario": scenario.name,
        "shows": scenario.shows,
        "setting": scenario.setting,
        "guard": getattr(config, scenario.setting),
        "schedule": schedule,
        "scratch": True,
        "settings": _settings(config, scenario),
        "threads": [
            {
                "name": actor.name,
                "does": actor.does,
                "steps": [actor.named_label(i) for i in range(len(actor.named))],
                "locks_named": locks_named[actor.name],
            }
            for actor in actors
        ],
        "events": stepper.events,
        "ran": stepper.ran,
        "answers": answers,
        "final": final,
        "findings": scenario.findings(final, answers),
    }


def _answer(actor: Actor, job: Job) -> dict:
    if actor.error is not None:
        return {"thread": actor.name, "ok": False, **error_record(actor.error)}
    return {"thread": actor.name, "ok": True, "result": actor.result, "answer": job.answer(actor.result)}


def _final(lab: Lab, steps: dict[str, list[Step]]) -> dict:
    """Balances of the accounts the threads write, the deposit books and the bank's total, at the end."""
    written = sorted(
        {target for each in steps.values() for step in each if step.kind == "write" for target in step.targets}
    )
    balances = lab.store.snapshot()
    return {**end_state(balances, written, lab.ledger.report(balances), lab.transfers.stats()), **_checkout(lab)}


def end_state(balances: dict[str, int], written: list[str], deposits: dict, transfers: dict) -> dict:
    """What a replay's end is judged on, from the balances, the deposit books and the transfers' stats: the
    memory replay's and the database explorer's alike."""
    return {
        "balances": {account: balances[account] for account in written if account in balances},
        "acknowledged_amount": deposits["acknowledged_amount"],
        "withdrawn_amount": deposits["withdrawn_amount"],
        "balance_change": deposits["balance_change"],
        "lost_updates": deposits["lost_updates"],
        "total": transfers["total"],
        "expected_total": transfers["expected_total"],
        "negative_accounts": sorted(account for account, balance in balances.items() if balance < 0),
        "deadlocks": transfers["deadlocks"],
    }


def _checkout(lab: Lab) -> dict:
    """The flash sale's books: how many checkouts were in flight at once against the capacity, and its stock."""
    sku = "flash-sale"
    return {
        "capacity": lab.config().capacity,
        "peak_in_flight": lab.shop.admission.report()["peak_in_flight"],
        "stock": lab.shop.inventory.snapshot()[sku],
        "sold": lab.shop.ledger.sold[sku],
        "initial_stock": CATALOGUE[sku],
    }


def _settings(config: Config, scenario: Scenario) -> dict:
    """The settings that shape a replay, as `GET /admin/config` shows them."""
    public = config.public()
    names = ["race_window_ms", "lock_timeout_ms", "accounts", "initial_balance"]
    if scenario.setting == "transfer_policy":
        names.insert(2, "deadlock_check_ms")
    if config.deposit_guard == "semaphore" and scenario.setting == "deposit_guard":
        names.insert(0, "deposit_permits")
    if scenario.setting == "checkout_guard":
        names = ["capacity", "max_waiting", "admission_timeout_ms", "race_window_ms", "lock_timeout_ms"]
    return {name: public[name] for name in names}


__all__ = ["InvalidReplay", "InvalidSchedule", "ReplayBusy", "replay"]
