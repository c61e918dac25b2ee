"""The scoreboard: each team's grades, a row per exercise, with the best and the latest kept.

A grade is what `bankapp exercise check NAME FILE --room URL --name TEAM` says
of the trainee's file on the trainee's own machine: passed or not, how many
schedules it tried, and its speed against the lab's model solution. The
server never sees the code and cannot judge it again, so the board says so:
grades are self-reported.

Bounded in memory: at most `max_teams` teams and `max_exercises` rows a team.
A grade for a row that exists always lands (it replaces the latest, maybe the
best); a grade that would add a team or a row past the bound is refused
(`ScoreboardFull`) and changes nothing. `clear()` (`DELETE /admin/scoreboard`)
empties the board.

Who may post for a team: nobody is asked by default (one scoreboard for the
server, open to anyone who can reach it). With rooms, the rooms code installs
a `token_check(team, token) -> bool` (`install_token_check`), and then a grade
needs that team's token (`Authorization: Bearer <token>`), so no team can post
into another's row.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

#: What the scoreboard says of every grade on it.
SELF_REPORTED = "self-reported: judged on the trainees' machines"
#: The exercises of the seed course, in its order: the board's columns come in this order, then any other name seen.
COURSE = ("deposit-guard", "reentrant-guard", "counting-semaphore", "transfer-order", "fair-lock", "admission")
MAX_TEAMS = 64
MAX_EXERCISES = 32
#: The key of the scoreboard in `app.extensions`.
EXTENSION = "bankapp.scoreboard"

#: `token_check(team, token)`: may this token (None when the request has none) post for this team?
TokenCheck = Callable[[str, str | None], bool]


@dataclass(frozen=True)
class Grade:
    """One posted grade, as the trainee's machine judged it. `speed_ratio`: the trainee's throughput under HTTP
    load over the model solution's in the same run (1.0 as fast, 0.5 half as fast), or None when not measured."""

    passed: bool
    schedules: int
    speed_ratio: float | None
    at: str  # when the server received it, UTC, ISO 8601

    def better_than(self, other: Grade) -> bool:
        """A pass beats a fail; between two passes the faster, then the one that tried more schedules; between two
        fails, the one that tried more. A tie keeps the older (the first to get there)."""
        if self.passed != other.passed:
            return self.passed
        if self.passed and self.speed_ratio != other.speed_ratio:
            if other.speed_ratio is None:
                return True
            if self.speed_ratio is None:
                return False
            return self.speed_ratio > other.speed_ratio
        return self.schedules > other.schedules

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "schedules": self.schedules, "speed_ratio": self.speed_ratio, "at": self.at}


@dataclass(frozen=True)
class Row:
    """A team's row for one exercise: how many grades it posted, its best and its latest."""

    team: str
    exercise: str
    attempts: int
    best: Grade
    latest: Grade

    def as_json(self) -> dict[str, Any]:
        # by hand: `dataclasses.asdict` deep-copies, 40 us a row, and a full board has 2048 of them
        return {
            "team": self.team,
            "exercise": self.exercise,
            "attempts": self.attempts,
            "best": self.best.as_json(),
            "latest": self.latest.as_json(),
        }


class ScoreboardFull(Exception):
    """A grade that would add a team or a row past the bound."""

    def __init__(self, what: str, limit: int, team: str, exercise: str):
        where = "teams" if what == "teams" else f"exercises for team {team}"
        super().__init__(
            f"the scoreboard holds at most {limit} {where}; this grade ({team}, {exercise}) would add one more and "
            "was not kept (an admin empties the board with DELETE /admin/scoreboard)"
        )
        self.what = what
        self.limit = limit
        self.team = team
        self.exercise = exercise


class Scoreboard:
    """Rows by team and exercise under one lock; `token_check` None (nobody asked) until rooms install one."""

    def __init__(
        self,
        max_teams: int = MAX_TEAMS,
        max_exercises: int = MAX_EXERCISES,
        now: Callable[[], float] = time.time,
    ):
        self.max_teams = max_teams
        self.max_exercises = max_exercises
        self.now = now
        self.token_check: TokenCheck | None = None
        #: which board this is (a restart or another worker makes another) and how many changes it has seen:
        #: together the `ETag` of `GET /scoreboard`, so a dashboard polling an unchanged board gets a 304
        self.epoch = secrets.token_hex(4)
        self.version = 0
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Row]] = {}  # team: exercise: row, each in the order first posted

    def record(self, team: str, exercise: str, passed: bool, schedules: int, speed_ratio: float | None) -> Row:
        """Keep a grade: the row's latest, and its best if it is better; raise `ScoreboardFull` past the bound."""
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now()))
        grade = Grade(passed=passed, schedules=schedules, speed_ratio=speed_ratio, at=at)
        with self._lock:
            rows = self._rows.get(team)
            if rows is None and len(self._rows) >= self.max_teams:
                raise ScoreboardFull("teams", self.max_teams, team, exercise)
            row = rows.get(exercise) if rows is not None else None
            if row is None and rows is not None and len(rows) >= self.max_exercises:
                raise ScoreboardFull("exercises", self.max_exercises, team, exercise)
            if row is None:
                row = Row(team=team, exercise=exercise, attempts=1, best=grade, latest=grade)
            else:
                best = grade if grade.better_than(row.best) else row.best
                row = replace(row, attempts=row.attempts + 1, best=best, latest=grade)
            self._rows.setdefault(team, {})[exercise] = row
            self.version += 1
            return row

    def etag(self) -> str:
        """The board's state in a word: it changes with every grade kept, a clear, and a token check installed."""
        return f"{self.epoch}-{self.version}-{int(self.token_required())}"

    def token_required(self) -> bool:
        """Whether a grade needs a token now: a check is installed, and it says so (`required()`, when it has one:
        a room with no teams yet asks for none)."""
        check = self.token_check
        if check is None:
            return False
        required = getattr(check, "required", None)
        return bool(required()) if callable(required) else True

    def may_post(self, team: str, token: str | None) -> bool:
        """Whether this token may post for `team`: always, until a `token_check` is installed."""
        check = self.token_check
        return check is None or bool(check(team, token))

    def rows(self) -> list[Row]:
        with self._lock:
            return [row for rows in self._rows.values() for row in rows.values()]

    def clear(self) -> int:
        """Empty the board; how many rows it held."""
        with self._lock:
            count = sum(len(rows) for rows in self._rows.values())
            self._rows.clear()
            self.version += 1
            return count

    def as_json(self) -> dict[str, Any]:
        """The board as `GET /scoreboard` answers it: teams and exercises (columns in the course's order), rows."""
        rows = self.rows()
        teams = sorted({row.team for row in rows})
        seen = {row.exercise for row in rows}
        exercises = [name for name in COURSE if name in seen] + sorted(seen - set(COURSE))
        column = {name: index for index, name in enumerate(exercises)}
        rows.sort(key=lambda row: (row.team, column[row.exercise]))
        return {
            "self_reported": True,
            "note": SELF_REPORTED,
            "token_required": self.token_required(),
            "teams": teams,
            "exercises": exercises,
            "rows": [row.as_json() for row in rows],
            "limits": {"teams": self.max_teams, "exercises_per_team": self.max_exercises},
        }


class TeamLike(Protocol):
    """What `room_token_check` asks of a room's team."""

    def opens(self, token: str) -> bool: ...


class RoomLike(Protocol):
    """What `room_token_check` asks of a room (`bankapp.rooms.Room` has both)."""

    @property
    def alone(self) -> bool: ...

    def get(self, name: str) -> TeamLike | None: ...


class RoomTokens:
    """The token check of a room: while the room has no teams (`alone`), anyone posts; once it has, only a team's own
    token posts for it, and a name that is not one of its teams (the default team too) is refused."""

    def __init__(self, room: RoomLike):
        self.room = room

    def __call__(self, team: str, token: str | None) -> bool:
        found = self.room.get(team)  # first: on a fleet, this finds a team another worker made
        if self.room.alone:
            return True
        return found is not None and token is not None and found.opens(token)

    def required(self) -> bool:
        return not self.room.alone


def install_token_check(extensions: dict[str, Any], check: TokenCheck | None) -> None:
    """Make every grade need its team's token: `install_token_check(app.extensions, RoomTokens(room))` for a room,
    or any `check(team, token) -> bool` saying whether `token` is that team's. None opens the board again."""
    board = extensions[EXTENSION]
    assert isinstance(board, Scoreboard)
    board.token_check = check
