"""`explore(config, "deposit", "unsafe")`: every schedule of a scenario of `bankapp interleave`, judged.

The scenario's threads run the lab's real code (`Bank`, the guards, the
transfer policies, the shop's admission) in a scratch lab whose store,
stock, guards and account locks announce each step to an `Execution`
(the same stepping parts `interleave` uses), under virtual time. The
search (`dpor.Search`) runs one schedule of each class of equivalent
ones; each run is judged in the lab's words (`classify`), and the
shortest failing one is kept in `interleave`'s notation, which replays
there to the same outcome.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections import Counter

from ..interleave.actors import not_started
from ..interleave.replay import _answer, _final, rehearse, replay_config, scratch_lab
from ..interleave.scenarios import SCENARIOS, Scenario, pair_sum
from ..interleave.schedule import THREAD_NAMES, Step
from ..settings import DATABASE_GUARDS, Config
from . import clock
from .db.rules import check_database, database_guards, on_database
from .dpor import Search, class_size
from .engine import Execution, Runner
from .outcomes import OUTCOMES, InvalidExplore

#: The modules whose sleeps, clocks and random draws are the explorer's (see `clock`).
TIMED_MODULES = (
    "bankapp.lab.bank",
    "bankapp.lab.transfers.policies",
    "bankapp.lab.shop",
    "bankapp.lab.admission.checkouts",
    "bankapp.lab.admission.gate",
)
#: How many threads a scenario may run under the explorer at most.
MOST_THREADS = 3
#: One exploration at a time in a process: the virtual clocks are per thread, the patching is not undone.
_one_at_a_time = threading.Lock()


#: Lock timeout (virtual ms) under `backoff`: its retries end there, so its search ends (the retry bound).
BACKOFF_TIMEOUT_MS = 20


def guards_of(scenario: Scenario) -> tuple[str, ...]:
    """The guards explored: those `interleave` replays, and `backoff` for transfers (its random waits are
    seeded and its tries time out in virtual time; none of its schedules fails, so none needs replaying)."""
    return (*scenario.guards, "backoff") if scenario.setting == "transfer_policy" else scenario.guards


def explore_config(config: Config, scenario: Scenario, guard: str | None, threads: int) -> Config:
    """The settings of a replay (see `replay_config`), and under `backoff` a lock timeout that bounds retries."""
    chosen = guard if guard is not None else getattr(config, scenario.setting)
    if chosen == "backoff":
        return replay_config(config, scenario, "naive", threads).model_copy(
            update={"transfer_policy": "backoff", "lock_timeout_ms": BACKOFF_TIMEOUT_MS}
        )
    return replay_config(config, scenario, guard, threads)


def check(scenario_name: str, guard: str | None, threads: int | None, max_schedules: int | None) -> Scenario:
    """The scenario, or `InvalidExplore` naming the value at fault."""
    scenario = SCENARIOS.get(scenario_name)
    if scenario is None:
        raise InvalidExplore(f"scenario: no scenario {scenario_name!r}; known: {', '.join(SCENARIOS)}", "scenario")
    if max_schedules is not None and max_schedules < 1:
        raise InvalidExplore(f"max-schedules: at least 1, not {max_schedules}", "max_schedules")
    if guard in DATABASE_GUARDS:
        return scenario  # explored on the database: see `explore`
    if guard is not None and guard != "all" and guard not in guards_of(scenario):
        known = ", ".join(guards_of(scenario))
        there = [g for g in database_guards(scenario.name) if g not in guards_of(scenario)]
        also = f"; on a server of the postgres store (--url) also {', '.join(there)}" if there else ""
        raise InvalidExplore(f"guard: {scenario.name} runs under {known} (or all){also}, not {guard!r}", "guard")
    most = min(scenario.most, MOST_THREADS)
    if threads is not None and not scenario.least <= threads <= most:
        span = str(most) if scenario.least == most else f"{scenario.least} to {most}"
        raise InvalidExplore(f"threads: {scenario.name} runs {span} threads, not {threads}", "threads")
    if max_schedules is not None and max_schedules < 1:
        raise InvalidExplore(f"max-schedules: at least 1, not {max_schedules}", "max_schedules")
    return scenario


def explore(
    config: Config,
    scenario_name: str,
    guard: str | None = None,
    threads: int | None = None,
    max_schedules: int | None = None,
    reduce: bool = True,
) -> dict:
    """Every schedule of `scenario_name` under `guard` (None: the one in force) with `threads` threads.

    Returns {scenario, guard, threads, schedules, equivalent, complete,
    outcomes, counterexample}: `schedules` run, `equivalent` skipped as
    equivalent to one run, `outcomes` over all of them (each run counts
    for its class), the shortest failing schedule or None.
    """
    scenario = check(scenario_name, guard, threads, max_schedules)
    chosen = getattr(config, scenario.setting) if guard is None else guard
    if chosen != "all" and on_database(config, scenario.name, chosen):
        if config.store != "postgres":
            check_database(scenario.name, chosen, threads)  # what is not explored there either says why
            raise InvalidExplore(
                f"guard: {chosen} is a database guard of the postgres store: explore it on a server that runs that "
                f"store (--url); here {scenario.name} runs under {', '.join(guards_of(scenario))}",
                "guard",
            )
        from .database import explore_database  # psycopg: only for the postgres store

        return explore_database(config, scenario.name, chosen, threads, max_schedules, reduce)
    if guard is None:  # the one in force, checked as if named
        scenario = check(scenario_name, chosen, threads, max_schedules)
    if guard == "all":
        raise InvalidExplore("guard: all is a table of every guard; explore each guard by name", "guard")
    n = threads if threads is not None else scenario.least
    config = explore_config(config, scenario, guard, n)
    with _one_at_a_time:
        for name in TIMED_MODULES:
            clock.patch(importlib.import_module(name))
        return _explore(config, scenario, n, max_schedules, reduce)


def _explore(config: Config, scenario: Scenario, n: int, max_schedules: int | None, reduce: bool) -> dict:
    jobs = dict(zip(THREAD_NAMES, scenario.jobs(config, n), strict=False))
    rehearsal = clock.VirtualClock()
    clock.install_for(threading.get_ident(), rehearsal)
    try:
        steps = {name: rehearse(config, job) for name, job in jobs.items()}
    finally:
        clock.uninstall_for({threading.get_ident(): None})
    outcomes: Counter[str] = Counter()
    found: list[dict] = []

    def execute(choose) -> Execution:
        runners = []
        for name, job in jobs.items():
            runner = Runner(name, job.does, operation=not_started, steps=steps[name])
            runner.plan(True)
            runners.append(runner)
        execution = Execution(runners, choose)
        lab = scratch_lab(config, execution)
        for runner in runners:
            runner.operation = functools.partial(jobs[runner.name].run, lab)
        execution.lab = lab
        execution.run()
        return execution

    def judge(execution: Execution) -> None:
        final = _final(execution.lab, steps)
        stuck = {"ok": False, "error": "stuck"}  # unwound at the deadlock: it never answered
        answers = [
            {"thread": runner.name, **stuck} if runner.aborted else _answer(runner, jobs[runner.name])
            for runner in execution.runners.values()
        ]
        kind = classify(scenario.name, final, answers, execution.end)
        outcomes[kind] += class_size(execution.moves) if reduce else 1
        if kind != "ok" and (not found or len(execution.moves) < len(found[0]["moves"])):
            found[:] = [{"moves": list(execution.moves), "outcome": kind, "runners": execution.runners}]
            found[0]["stuck"] = execution.stuck

    search = Search(execute, judge, reduce=reduce, max_schedules=max_schedules)
    stopped = search.run_saying_why_it_stopped()
    return {
        "scenario": scenario.name,
        "guard": getattr(config, scenario.setting),
        "threads": n,
        "schedules": search.schedules,
        "equivalent": search.equivalent,
        "complete": search.complete,
        "stopped": stopped,
        "outcomes": {kind: outcomes[kind] for kind in reversed(OUTCOMES)},
        "counterexample": _counterexample(found[0], steps) if found else None,
    }


def _counterexample(found: dict, steps: dict[str, list[Step]]) -> dict:
    """The failing schedule as `interleave` names it: the steps run, then each thread's steps never reached."""
    words = [move.label for move in found["moves"]]
    for runner in found["runners"].values():
        words += [runner.named_label(i) for i in range(runner.go, len(runner.named))]
    described = []
    for move in found["moves"]:
        entry = {"step": move.label, "does": "; ".join(move.calls)}
        if move.also:
            entry["then"] = sorted(move.also)
        described.append(entry)
    result = {"schedule": " ".join(words), "outcome": found["outcome"], "steps": described}
    if found["stuck"]:
        result["stuck"] = found["stuck"]
    return result


def classify(scenario: str, final: dict, answers: list[dict], end: str | None = None) -> str:
    """One schedule's outcome, in the lab's words, from the end state (`final`, as a replay has it) and the
    threads' answers; `end` is how the explorer saw it end (a deadlock, seen directly)."""
    if end in ("deadlock", "self-deadlock"):
        return end
    for answer in answers:
        if answer["ok"]:
            continue
        if answer["error"] == "self-deadlock":
            return "self-deadlock"
        if answer["error"] == "deadlock":
            return "self-deadlock" if len({step["thread"] for step in answer["cycle"]}) == 1 else "deadlock"
    if final["deadlocks"]:
        return "deadlock"
    if scenario == "checkout" and final["peak_in_flight"] > final["capacity"]:
        return "over-capacity"
    if scenario == "write-skew":  # one account may go below zero; the rule is over the pair's sum
        if pair_sum(final) < 0:
            return "below-zero"
    elif final["negative_accounts"]:
        return "below-zero"
    audits = [a["result"] for a in answers if a["ok"] and isinstance(a["result"], dict) and "difference" in a["result"]]
    if any(audit["difference"] for audit in audits):
        return "money-in-flight"
    if final["lost_updates"] or final["total"] != final["expected_total"]:
        return "lost-update"
    if scenario == "checkout" and final["initial_stock"] - final["sold"] != final["stock"]:
        return "lost-update"
    return "ok"


def replayed_outcome(result: dict) -> str:
    """The outcome of a replay by `bankapp interleave` (its JSON), judged as the explorer judges a schedule (a
    replay on the database says how it ended, `end`: a deadlock there is every session waiting, seen directly)."""
    return classify(result["scenario"], result["final"], result["answers"], result.get("end"))


def replay_anywhere(config: Config, scenario_name: str, guard: str | None = None, schedule: str | None = None) -> dict:
    """What `POST /admin/interleave` runs: on the postgres store, a scenario the explorer runs on the database
    (its database guards, its transfer policies) is replayed there, statement by statement, so a counterexample
    of `bankapp explore --url` replays to the same outcome; everything else in memory, as `interleave.replay`."""
    from ..interleave import replay

    scenario = SCENARIOS.get(scenario_name)
    chosen = guard if guard is not None or scenario is None else getattr(config, scenario.setting)
    if scenario is not None and config.store == "postgres" and chosen and on_database(config, scenario.name, chosen):
        from .db.replay import replay_database  # psycopg: only for the postgres store

        return replay_database(config, scenario.name, chosen, schedule)
    return replay(config, scenario_name, guard, schedule)
