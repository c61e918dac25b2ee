"""A room: the teams of one server, each with its own lab and token, and what the instructor does to them all.

A team is a name (1 to 32 of `a-z0-9-`), a lab of its own (bank, shop,
settings, counters, forensics: `bankapp.boot.make_team_lab`) and a token,
shown once when the team is made and kept here only as its SHA-256. The
default team is the lab the server started with: it has no token of its
own (the admin token opens its admin routes, as before rooms).

Nothing here knows HTTP: the web service names the team of a request
(`bankapp.rooms.routing`), and asks the room for it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..lab import LabLike
from ..lab.admission import ResetBlocked
from ..settings.lessons import LESSONS, lesson_settings
from .share import FairShare

DEFAULT_TEAM = "default"
#: What a team's name may be: it goes in paths, headers, metric labels and (on postgres) the database.
NAME = re.compile(r"[a-z0-9-]{1,32}")
#: Teams one server holds, the default team included: each is a lab in memory (and a pool on postgres).
MAX_TEAMS = 64
#: Seconds a worker goes on with what the shared store said of the freeze before it asks again.
FROZEN_READ_S = 1.0


class RoomRefused(Exception):
    """A request to the room that changes nothing: `status`, a problem `slug`, and the sentence saying why."""

    def __init__(self, status: int, slug: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extra = extra


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Team:
    """One team: its lab and its token's digest (None: the default team)."""

    name: str
    lab: LabLike
    token_digest: bytes | None = None
    created: float = field(default_factory=time.time)
    #: (when, deposits acknowledged) at the last summary at least a second old: deposits/s between summaries
    rate_sample: tuple[float, int, float] = (0.0, 0, 0.0)

    def opens(self, token: str) -> bool:
        """Whether `token` is this team's (in the same time whatever the guess)."""
        return self.token_digest is not None and hmac.compare_digest(digest(token), self.token_digest)


def check_names(names: Any, existing: Iterable[str], room_left: int) -> list[str]:
    """The names of a `POST /admin/rooms` body, or `RoomRefused` naming the first that cannot be a team."""
    if not isinstance(names, list) or not names:
        raise RoomRefused(422, "invalid-input", 'teams: expected a non-empty list of names, as {"teams": ["red"]}')
    for name in names:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise RoomRefused(
                422,
                "bad-team-name",
                f"team name {name!r}: 1 to 32 characters, each a-z, 0-9 or '-'",
                team=name if isinstance(name, str) else repr(name),
            )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise RoomRefused(422, "duplicate-team", f"team {name!r} is named twice in this request", team=name)
        seen.add(name)
    taken = sorted(seen & set(existing))
    if taken:
        raise RoomRefused(
            409, "team-exists", f"team {taken[0]!r} already exists; its token was shown once", team=taken[0]
        )
    if len(names) > room_left:
        raise RoomRefused(
            409,
            "too-many-teams",
            f"{len(names)} new teams would pass the server's limit of {MAX_TEAMS} teams ({room_left} left)",
            limit=MAX_TEAMS,
        )
    return names


class Room:
    """The server's teams, the default one first; `make_lab(name)` builds a new team's lab."""

    def __init__(
        self,
        default_lab: LabLike,
        make_lab: Callable[[str, bytes | None], LabLike],
        budget: int,
        registered: Callable[[], dict[str, bytes | None]] | None = None,
    ):
        """`make_lab(name, token_digest)` makes a team's lab (with a digest: a new team; without: one another
        worker made); `registered()`, on a store every worker shares, is the room as the store holds it."""
        self.make_lab = make_lab
        self.registered = registered
        # on a store every worker shares, the freeze lives there: (read it, write it), read at most once a second
        self.shared_freeze: tuple[Callable[[], bool], Callable[[bool], None]] | None = None
        self._frozen = False
        self._frozen_read = -FROZEN_READ_S
        self.share = FairShare(budget)
        self._lock = threading.Lock()
        self._teams: dict[str, Team] = {DEFAULT_TEAM: Team(DEFAULT_TEAM, default_lab)}

    @property
    def alone(self) -> bool:
        """True while the default team is the only one this worker knows: the server as it was before rooms."""
        return len(self._teams) == 1

    def get(self, name: str) -> Team | None:
        """The team named; on a shared store, one another worker made is found there (and kept)."""
        team = self._teams.get(name)
        if team is None and self.registered is not None and NAME.fullmatch(name):
            team = self._learn(self.registered()).get(name)
        return team

    def teams(self) -> list[Team]:
        """Every team, the default first; on a shared store, the store's whole room."""
        if self.registered is not None:
            self._learn(self.registered())
        return list(self._teams.values())

    def labs(self) -> list[LabLike]:
        """The labs of the teams this worker met, the default team's first (nothing asked of the store)."""
        return [team.lab for team in list(self._teams.values())]

    def _learn(self, registered: dict[str, bytes | None]) -> dict[str, Team]:
        """Keep a lab of each team the store holds that this worker has not met yet."""
        missing = [name for name in registered if name not in self._teams]
        if missing:
            with self._lock:
                for name in missing:
                    if name not in self._teams and len(self._teams) < MAX_TEAMS:
                        lab = self.make_lab(name, None)
                        lab.start()
                        self._teams[name] = Team(name, lab, registered[name])
                self.share.teams = len(self._teams)
        return self._teams

    def create(self, names: Any) -> list[dict[str, str]]:
        """Make the teams named, all or none (on a shared store: none that the store already holds); each
        team's token, shown this once and kept only as its digest."""
        with self._lock:
            known = set(self._teams) | set(self.registered() if self.registered is not None else ())
            names = check_names(names, known, MAX_TEAMS - len(known))
            answer = []
            for name in names:
                token = secrets.token_urlsafe(24)
                try:
                    lab = self.make_lab(name, digest(token))
                except ValueError:  # another worker made it a moment ago
                    raise RoomRefused(409, "team-exists", f"team {name!r} already exists", team=name) from None
                except OverflowError:  # other workers filled the room meanwhile (the shared register says so)
                    raise RoomRefused(
                        409,
                        "too-many-teams",
                        f"team {name!r} would pass the server's limit of {MAX_TEAMS} teams",
                        limit=MAX_TEAMS,
                    ) from None
                lab.start()
                self._teams[name] = Team(name, lab, digest(token))
                answer.append({"name": name, "token": token})
            self.share.teams = len(self._teams)
            return answer

    def move_to_lesson(self, number: Any) -> dict[str, Any]:
        """Every team's settings to lesson `number`'s (the rest at defaults), every team's books reset."""
        if isinstance(number, bool) or not isinstance(number, int) or number not in LESSONS:
            raise RoomRefused(422, "unknown-lesson", f"lesson: a whole number from 1 to {max(LESSONS)}, not {number!r}")
        settings = lesson_settings(number)
        failed: dict[str, str] = {}
        for team in self.teams():
            team.lab.settings.patch(dict(settings))
            try:
                team.lab.reset()
            except ResetBlocked as error:  # one team's request running on must not keep the room from moving
                failed[team.name] = str(error)
        answer = {"lesson": number, "title": LESSONS[number].title, "settings": settings, "teams": len(self._teams)}
        return answer | ({"failed": failed} if failed else {})

    def reset_all(self) -> dict[str, Any]:
        """Every team's books reset (settings stay), frozen or not; a team whose reset gave up is named."""
        broken: dict[str, int] = {}
        failed: dict[str, str] = {}
        for team in self.teams():
            try:
                broken[team.name] = len(team.lab.reset()["deadlocks_broken"])
            except ResetBlocked as error:
                failed[team.name] = str(error)
        answer = {"status": "reset", "teams": len(broken), "deadlocks_broken": broken}
        return answer | ({"failed": failed} if failed else {})

    def freeze_all(self, frozen: Any) -> dict[str, Any]:
        """Freeze (or thaw) every team: a frozen team's state changes are refused (423) until thawed."""
        if not isinstance(frozen, bool):
            raise RoomRefused(422, "invalid-input", f"frozen: true or false, not {frozen!r}")
        if self.shared_freeze is not None:
            self.shared_freeze[1](frozen)
            if frozen:  # every worker re-reads within FROZEN_READ_S: once answered, no worker takes a change
                time.sleep(FROZEN_READ_S)
        self._frozen, self._frozen_read = frozen, time.monotonic()
        return {"frozen": frozen, "teams": len(self.teams())}

    @property
    def frozen(self) -> bool:
        """Whether the instructor froze the room; on a shared store, as it said at most a second ago."""
        if self.shared_freeze is not None and time.monotonic() - self._frozen_read >= FROZEN_READ_S:
            self._frozen, self._frozen_read = self.shared_freeze[0](), time.monotonic()
        return self._frozen

    def summary(self, team: Team) -> dict[str, Any]:
        """One line of the instructor's console: guards, throughput, anomalies, the share."""
        stats = team.lab.stats()
        deposits, transfers, checkout, settings = (stats[k] for k in ("deposits", "transfers", "checkout", "settings"))
        now, acknowledged = time.monotonic(), deposits["acknowledged"]
        when, before, rate = team.rate_sample
        if now - when >= 1.0:
            rate = max(0.0, (acknowledged - before) / (now - when)) if when else 0.0
            team.rate_sample = (now, acknowledged, rate)
        return {
            "name": team.name,
            "frozen": self.frozen,
            "guards": {k: settings[k] for k in ("deposit_guard", "checkout_guard", "transfer_policy")},
            "race_window_ms": settings["race_window_ms"],
            "lock_timeout_ms": settings["lock_timeout_ms"],
            "deposits": deposits["acknowledged"],
            "deposits_per_s": round(rate, 1),
            "lost_cents": deposits["lost_updates"],
            "transfers": transfers["committed"],
            "deadlocks": transfers["deadlocks"],
            "self_deadlocks": deposits["self_deadlocks"],
            "checkouts": checkout["admitted"],
            "oversold": checkout["oversold"],
            "share": self.share.report(team.name),
        }
