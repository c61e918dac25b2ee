"""The lessons of the lab guide and the settings each starts from: read by `bankapp lesson N` (the command line)
and by a room's instructor (`POST /admin/rooms/lesson` moves every team to lesson N on the server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import STARTUP_ONLY, Config


@dataclass(frozen=True)
class Lesson:
    title: str
    #: what the lesson needs, shown to the trainee (defaults included when they matter)
    settings: dict[str, Any] = field(default_factory=dict)
    #: False: the lesson runs scripts only, no server
    server: bool = True
    #: settings fixed at start that the lesson's own server is started with (the rest at defaults)
    started: dict[str, Any] = field(default_factory=dict)


#: The server lessons 13 to 16 start: several processes sharing one PostgreSQL database.
FLEET = {"store": "postgres", "workers": 4, "threads": 16}


LESSONS = {
    1: Lesson("Threads: `active_count`, `enumerate`, `current_thread`"),
    2: Lesson("`start` and `join`: a thread runs once", server=False),
    3: Lesson(
        "Race condition: a stale read, a lost update",
        {"deposit_guard": "unsafe", "race_window_ms": 500, "switch_interval_us": 5000},
    ),
    4: Lesson("`Lock`: acquire, release, `with`", {"deposit_guard": "lock", "race_window_ms": 500}),
    5: Lesson(
        "Acquire with a timeout returns False",
        {"deposit_guard": "lock", "race_window_ms": 1500, "lock_timeout_ms": 200},
    ),
    6: Lesson("Releasing an unheld lock is an error", server=False),
    7: Lesson("`RLock`: the same thread acquires again", {"deposit_guard": "rlock", "lock_timeout_ms": 2000}),
    8: Lesson(
        "Deadlock and its four conditions",
        {"transfer_policy": "naive", "race_window_ms": 200, "lock_timeout_ms": 2000, "deadlock_check_ms": 50},
    ),
    9: Lesson("Avoiding deadlock by breaking a condition", {"transfer_policy": "naive", "race_window_ms": 1}),
    10: Lesson(
        "`Semaphore` as a counter, its value",
        {"checkout_guard": "semaphore", "capacity": 3, "service_time_ms": 2000, "admission_timeout_ms": 0},
    ),
    11: Lesson("A semaphore of 1 is a lock; of N > 1 it is not", {"deposit_guard": "semaphore", "deposit_permits": 1}),
    12: Lesson(
        "Limiting parallel use of a resource",
        {"checkout_guard": "unsafe", "capacity": 8, "service_time_ms": 50, "gateway_capacity": 8},
    ),
    13: Lesson("Threads vs processes", started=FLEET),
    14: Lesson("Locks one level up", started=FLEET),
    15: Lesson("Isolation levels: a lost update", started=FLEET),
    16: Lesson("Isolation levels: write skew", started=FLEET),
    17: Lesson("Every interleaving: proof instead of luck", {"race_window_ms": 1}),
    18: Lesson(
        "The semaphore needs the right number; this one finds it",
        {"checkout_guard": "adaptive", "capacity": 20, "service_time_ms": 50, "gateway_capacity": 8},
    ),
}


def runtime_defaults() -> dict[str, Any]:
    """Every setting `PATCH /admin/config` accepts, at its default."""
    return {
        name: info.default
        for name, info in Config.model_fields.items()
        if name not in STARTUP_ONLY and name != "admin_token"
    }


def lesson_settings(number: int) -> dict[str, Any]:
    """The one `PATCH /admin/config` body that puts a lab in lesson `number`'s state: every runtime setting at
    its default, the lesson's own over them."""
    patchable = {name: value for name, value in LESSONS[number].settings.items() if name not in STARTUP_ONLY}
    return runtime_defaults() | patchable
