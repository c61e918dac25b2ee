"""`bankapp lesson N`: put a running server in the state lesson N of the lab guide starts from.

Every lesson of `docs/lab-guide.md` begins with it, so a lesson never
depends on what an earlier one left behind (a guard switched, a window
widened, balances moved). It sets every setting that can change at runtime
back to its default, then the lesson's own settings over them, in one
`PATCH /admin/config`; resets balances, stock and counters with
`POST /admin/reset`; and prints the lesson's settings in one short line.
`GET /admin/config` shows all of them at any time.

Settings fixed at start (`accounts`, `threads`, ...) cannot be patched; a
server started with other values than the lesson assumes (the defaults, or
for lessons 13 to 16 the PostgreSQL fleet, `Lesson.started`) is named in a
note, since the guide's outputs assume them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import requests

from ..settings import ENV_PREFIX, STARTUP_ONLY, Config


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


def shown(settings: dict[str, Any]) -> str:
    return " ".join(f"{name}={'none' if value is None else value}" for name, value in settings.items())


class LessonError(Exception):
    """The server could not be put in the lesson's state; the message says why."""


def start(number: int, url: str, token: str | None = None) -> list[str]:
    """Put the server at `url` in lesson `number`'s state; the lines to print."""
    lesson = LESSONS[number]
    heading = f"lesson {number}: {lesson.title.replace('`', '')}"
    if not lesson.server:
        return [f"{heading} (needs no server: nothing to set)"]
    patchable = {name: value for name, value in lesson.settings.items() if name not in STARTUP_ONLY}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        patched = requests.patch(
            url + "/admin/config", json=runtime_defaults() | patchable, headers=headers, timeout=10
        )
        check(patched, "PATCH /admin/config")
        check(requests.post(url + "/admin/reset", headers=headers, timeout=10), "POST /admin/reset")
    except requests.ConnectionError:
        raise LessonError(f"no server answers at {url}; start one first: bankapp serve") from None
    chosen = f"{shown(lesson.settings)}, the rest at defaults" if lesson.settings else "every setting at its default"
    lines = [f"{heading} (balances and counters reset)", f"  {chosen}"]
    config = patched.json()
    assumed = {name: info.default for name, info in Config.model_fields.items()} | lesson.started
    odd = {
        name: config[name]
        # where it listens, how it logs and which database it uses are the trainee's own
        for name in sorted(STARTUP_ONLY - {"host", "port", "log_level", "database_url"})
        if name in config and config[name] != assumed[name]
    }
    if odd:
        expected = f"{shown(lesson.started)} and the defaults" if lesson.started else "the defaults"
        lines.append(f"  note: this server was started with {shown(odd)}; the guide's outputs assume {expected}")
    return lines


def check(response: requests.Response, what: str) -> None:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise LessonError(f"{what} answered {response.status_code}: {detail}")


def token_from_environment() -> str | None:
    return os.environ.get(ENV_PREFIX + "ADMIN_TOKEN") or None
