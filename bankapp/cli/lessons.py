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
from typing import Any

import requests

from ..settings import ENV_PREFIX, STARTUP_ONLY, Config
from ..settings.lessons import FLEET as FLEET
from ..settings.lessons import LESSONS as LESSONS
from ..settings.lessons import Lesson as Lesson
from ..settings.lessons import runtime_defaults as runtime_defaults


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


def start_room(number: int, url: str, token: str | None = None) -> list[str]:
    """Move every team of the room at `url` to lesson `number` (`POST /admin/rooms/lesson`); the lines to print."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        moved = requests.post(url + "/admin/rooms/lesson", json={"lesson": number}, headers=headers, timeout=60)
    except requests.ConnectionError:
        raise LessonError(f"no server answers at {url}") from None
    check(moved, "POST /admin/rooms/lesson")
    answer = moved.json()
    return [f"lesson {number}: {answer['title'].replace('`', '')}: {answer['teams']} teams moved, books reset"]
