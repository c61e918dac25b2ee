"""A room: the instructor's routes (`/admin/rooms`: teams made, listed, moved to a lesson, reset, frozen) and the
checks every request naming a team passes before its view (`check_team`). See docs/rooms.md."""

from __future__ import annotations

from typing import Any

from flask import Request, request
from flask_openapi3 import Tag
from pydantic import BaseModel, Field

from ...rooms import DEFAULT_TEAM, MAX_TEAMS, TEAM_NAME, Room, RoomRefused, Team
from ...settings import Config
from .. import admin_auth
from ..problems import Problem
from ..schemas import Problem as ProblemOut
from ..scoreboard.board import EXTENSION as SCOREBOARD
from .dispatch import Blueprint as APIBlueprint
from .dispatch import current_app_object

bp = APIBlueprint("rooms", __name__, abp_tags=[Tag(name="rooms", description="a room: a lab per team")])

ROOM_PREFIX = "/admin/rooms"
#: The room's one scoreboard (every team's rows): emptied by the instructor, never by a team's token.
ROOM_SCOREBOARD = "/admin/scoreboard"
STATE_CHANGES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: The share rule in one line, as `GET /admin/rooms` and docs/rooms.md name it.
SHARE_RULE = (
    "a share each, the spare lent, one share kept free: each team may always hold budget // teams of the "
    "worker's threads (at least 1); past it a team borrows a spare thread only while a share stays free; "
    "past that, 503 team-share with Retry-After"
)


class TeamToken(BaseModel):
    name: str
    token: str = Field(description="the team's token, shown this once: it opens the team's admin routes")


class RoomCreated(BaseModel):
    teams: list[TeamToken]


class RoomOut(BaseModel):
    teams: list[dict[str, Any]] = Field(
        description="each team's summary: guards, deposits/s, lost cents, deadlocks, grades (the scoreboard's)"
    )
    limit: int
    share_rule: str


class LessonOut(BaseModel):
    lesson: int
    title: str
    settings: dict[str, Any]
    teams: int
    failed: dict[str, str] = Field(default={}, description="teams whose reset gave up (absent: none), and why")


class RoomResetOut(BaseModel):
    status: str
    teams: int
    deadlocks_broken: dict[str, int] = Field(description="deadlocks broken in each team's lab by the reset")
    failed: dict[str, str] = Field(default={}, description="teams whose reset gave up (absent: none), and why")


class FreezeOut(BaseModel):
    frozen: bool
    teams: int


REFUSALS: dict[int | str, type[ProblemOut]] = {400: ProblemOut, 409: ProblemOut, 415: ProblemOut, 422: ProblemOut}
#: What a room route with a body may answer besides its success: malformed JSON, not JSON, a bad value.
BAD_BODY: dict[int | str, type[ProblemOut]] = {400: ProblemOut, 415: ProblemOut, 422: ProblemOut}


def room() -> Room:
    return current_app_object().extensions["bankapp.room"]


def refused(error: RoomRefused) -> Problem:
    return Problem(error.status, error.slug, "Room request refused", error.detail, **error.extra)


def body_of(name: str, default: Any = None) -> Any:
    data = request.get_json() if request.content_length else None  # malformed: 400, not JSON: 415 (`body`)
    if data is None:
        return default
    if not isinstance(data, dict):
        raise Problem(422, "invalid-input", "Invalid input", "the body must be a JSON object")
    return data.get(name, default)


@bp.post(ROOM_PREFIX, responses={201: RoomCreated, **REFUSALS})
def create_teams():
    """Make teams: `{"teams": ["red", "blue"]}`, all or none; each team's token is in the answer, only here."""
    try:
        return {"teams": room().create(body_of("teams"))}, 201
    except RoomRefused as error:
        raise refused(error) from None


@bp.get(ROOM_PREFIX, responses={200: RoomOut})
def list_teams():
    """Every team, the default first, with what the instructor's console shows of it."""
    the_room = room()
    board = current_app_object().extensions.get(SCOREBOARD)
    grades: dict[str, dict[str, bool]] = {}
    for row in board.rows() if board is not None else []:  # each team's best grade per exercise: passed or not
        grades.setdefault(row.team, {})[row.exercise] = row.best.passed
    return {
        "teams": [the_room.summary(team) | {"grades": grades.get(team.name, {})} for team in the_room.teams()],
        "limit": MAX_TEAMS,
        "share_rule": SHARE_RULE,
    }


@bp.post(ROOM_PREFIX + "/lesson", responses={200: LessonOut, **BAD_BODY})
def move_to_lesson():
    """Every team to lesson N (`{"lesson": 8}`): its settings (the rest at defaults), every team's books reset."""
    try:
        return room().move_to_lesson(body_of("lesson"))
    except RoomRefused as error:
        raise refused(error) from None


@bp.post(ROOM_PREFIX + "/reset", responses={200: RoomResetOut, 503: ProblemOut})
def reset_all():
    """Every team's books reset; settings stay."""
    return room().reset_all()


@bp.post(ROOM_PREFIX + "/freeze", responses={200: FreezeOut, **BAD_BODY})
def freeze_all():
    """`{"frozen": true}` freezes every team (its state changes answer 423), `false` thaws them."""
    try:
        return room().freeze_all(body_of("frozen", True))
    except RoomRefused as error:
        raise refused(error) from None


def is_metrics(req: Request) -> bool:
    return req.path == "/metrics"


def bearer(req: Request) -> str | None:
    scheme, _, given = req.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def check_team(req: Request, config: Config, team: Team | None) -> None:
    """Before the view of a request that names a team (or `/metrics` in a room): the team exists, the token
    opens what it asks, a frozen team changes nothing, and its share has a thread for it."""
    name = req.environ.get(TEAM_NAME)
    if name is not None and team is None:
        raise Problem(
            404, "unknown-team", "Unknown team", f"no team {name!r} in this room (see GET /admin/rooms)", team=name
        )
    path = req.path
    if is_metrics(req):
        check_metrics(req, config, name)
        return
    if path in (ROOM_PREFIX, ROOM_SCOREBOARD) or path.startswith(ROOM_PREFIX + "/"):  # every team's
        if name not in (None, DEFAULT_TEAM):
            raise Problem(403, "room-admin-only", "Forbidden", "the room's routes are the instructor's: no team's")
        admin_auth.require_admin_token(req, config)
        return
    assert team is not None
    if admin_auth.is_admin_path(path):
        token = bearer(req)
        if token is not None and team.name != DEFAULT_TEAM and not team.opens(token):
            if not admin_auth.has_admin_token(req, config):  # the admin token opens every team
                raise Problem(
                    403,
                    "team-forbidden",
                    "Forbidden",
                    f"the bearer token is neither team {team.name!r}'s token nor the admin token",
                    team=team.name,
                )
        elif token is None or not team.opens(token):
            admin_auth.require_admin_token(req, config)
    if req.method in STATE_CHANGES and not path.startswith("/scoreboard") and room().frozen:  # grades go on
        raise Problem(
            423,
            "team-frozen",
            "Team frozen",
            f"team {team.name!r} is frozen by the instructor: nothing it holds changes until POST "
            f'{ROOM_PREFIX}/freeze {{"frozen": false}}',
            team=team.name,
        )


def check_metrics(req: Request, config: Config, name: str | None) -> None:
    """`/metrics` is the fleet's, every team in it: the admin token or loopback reads it, never a team's token."""
    if name not in (None, DEFAULT_TEAM):
        raise Problem(
            403, "metrics-fleet-wide", "Forbidden", "/metrics holds every team: read it without a team, as admin"
        )
    if room().alone or admin_auth.is_loopback(req.remote_addr):
        return
    token = bearer(req)
    if config.admin_token is None or token is None or not admin_auth.has_admin_token(req, config):
        raise Problem(
            403 if token else 401,
            "metrics-admin-only",
            "Forbidden" if token else "Unauthorized",
            "in a room /metrics holds every team: it needs 'Authorization: Bearer <admin_token>' (or loopback)",
        )
