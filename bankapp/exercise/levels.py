""" "Break it" levels, after The Deadlock Empire: the lab's own code is given; the trainee is the scheduler.

Each level is a scenario of `bankapp interleave` under a given guard or
policy, and the outcome that breaks it. `bankapp exercise check LEVEL
--schedule "..."` replays the trainee's schedule with `interleave`'s own
replay (in this process, in a scratch lab, as `bankapp interleave` does)
and judges it as the explorer judges a schedule (`replayed_outcome`): it
wins when that outcome is the level's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..explore.explorer import replayed_outcome
from ..interleave import render
from ..interleave.replay import replay
from ..interleave.schedule import InvalidSchedule
from ..settings import Config


@dataclass(frozen=True)
class Level:
    name: str
    scenario: str
    guard: str
    breaks: str  # the outcome that wins
    goal: str
    settings: tuple[tuple[str, object], ...] = ()


LEVELS = {
    level.name: level
    for level in (
        Level(
            "unguarded-deposit",
            "deposit",
            "unsafe",
            "lost-update",
            "Two deposits into acc-00 with no guard at all. Make one of them vanish.",
        ),
        Level(
            "semaphore-of-two",
            "deposit",
            "semaphore",
            "lost-update",
            "Two deposits under a semaphore of 2 permits, used as a lock. Make one vanish anyway.",
            (("deposit_permits", 2),),
        ),
        Level(
            "check-then-act",
            "withdraw",
            "unsafe",
            "below-zero",
            "Two withdrawals of 60 % of the balance, each checks the balance first. Overdraw the account.",
        ),
        Level(
            "naive-transfers",
            "transfer",
            "naive",
            "deadlock",
            "Two transfers in opposite directions, each locks its source, then its target. Deadlock them.",
        ),
        Level(
            "release-first-audit",
            "audit",
            "release-first",
            "money-in-flight",
            "A transfer that releases its source before it takes its target, and an audit. Make the audit "
            "count money that is in neither account.",
        ),
        Level(
            "self-locking-batch",
            "batch",
            "lock",
            "self-deadlock",
            "A batch deposit under a plain lock, taking it again for each amount. Make it wait for itself.",
        ),
    )
}


class LevelRefused(ValueError):
    """The schedule cannot be replayed as written (the message names the step at fault)."""


def check_level(config: Config, name: str, schedule: str) -> dict:
    """Replay `schedule` against level `name`: {level, scenario, guard, breaks, schedule, outcome, won, lines}."""
    level = LEVELS[name]
    settings = config.model_copy(update={"race_window_ms": 0, **dict(level.settings)})
    try:
        result = replay(settings, level.scenario, level.guard, schedule)
    except InvalidSchedule as error:
        raise LevelRefused(str(error)) from None
    outcome = replayed_outcome(result)
    return {
        "level": level.name,
        "scenario": level.scenario,
        "guard": level.guard,
        "breaks": level.breaks,
        "schedule": result["schedule"],
        "outcome": outcome,
        "won": outcome == level.breaks,
        "findings": result["findings"],
        "lines": render(result),
    }
