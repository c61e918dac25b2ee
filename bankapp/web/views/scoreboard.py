"""The room's scoreboard: `POST /scoreboard` keeps a team's grade, `GET /scoreboard` reads the board, `DELETE
/admin/scoreboard` empties it. A grade never carries code: any field beyond the five is refused by name."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any

from flask import Flask, Response, jsonify
from flask_openapi3 import Tag
from pydantic import BaseModel, BeforeValidator, Field

from ...settings import whole_number
from ..problems import Problem as Refusal
from ..schemas import Problem, Strict
from ..scoreboard import RateLimited, Scoreboard, ScoreboardFull, TokenBuckets
from ..scoreboard.board import EXTENSION
from .dispatch import Blueprint as APIBlueprint
from .dispatch import current_app_object, current_request

bp = APIBlueprint("scoreboard", __name__, abp_tags=[Tag(name="scoreboard", description="the room's exercise grades")])

#: A team's or an exercise's name: 1-32 of a-z, 0-9 and `-` (as rooms name teams).
NAME = r"^[a-z0-9-]{1,32}$"
MAX_SCHEDULES = 10**12
MAX_SPEED_RATIO = 1e6
#: Posting rates (token buckets): per client address, a burst then one a second; per team, a burst then one per 5 s.
CLIENT_BURST, CLIENT_PER_SECOND = 30, 1.0
TEAM_BURST, TEAM_PER_SECOND = 10, 0.2
BUCKETS = EXTENSION + ".buckets"


def finite_number(value: Any) -> Any:
    """A JSON number as a float (the body reader keeps a fraction as a `Decimal`); booleans and strings pass through
    for the strict model to refuse."""
    if isinstance(value, Decimal) and value.is_finite():
        return float(value)
    return value


class GradeIn(Strict):
    """A grade as the trainee's machine judged it; never the code."""

    team: str = Field(pattern=NAME, description="the team: 1-32 of a-z, 0-9 and -")
    exercise: str = Field(
        pattern=NAME,
        description="deposit-guard, reentrant-guard, counting-semaphore, transfer-order, fair-lock, admission, "
        "or a break-it level (1-32 of a-z, 0-9 and -)",
    )
    passed: bool = Field(description="whether the check passed")
    schedules: Annotated[int, Field(ge=0, le=MAX_SCHEDULES), BeforeValidator(whole_number)] = Field(
        description="how many schedules the check tried"
    )
    speed_ratio: Annotated[float | None, BeforeValidator(finite_number)] = Field(
        None,
        gt=0,
        le=MAX_SPEED_RATIO,
        allow_inf_nan=False,
        description="the trainee's throughput over the model solution's in the same run (0.5: half as fast), or null",
    )


class GradeOut(BaseModel):
    passed: bool
    schedules: int
    speed_ratio: float | None
    at: str = Field(description="when the server received it, UTC")


class RowOut(BaseModel):
    """A team's row for one exercise: how many grades it posted, its best and its latest."""

    team: str
    exercise: str
    attempts: int
    best: GradeOut
    latest: GradeOut


class ScoreboardOut(BaseModel):
    """Every team's rows; grades are self-reported (judged on the trainees' machines)."""

    self_reported: bool
    note: str
    token_required: bool = Field(description="whether a grade needs its team's token (rooms)")
    teams: list[str]
    exercises: list[str] = Field(description="the columns: the course's exercises first, in its order")
    rows: list[RowOut]
    limits: dict[str, int]


class ClearedOut(BaseModel):
    cleared: int = Field(description="how many rows the board held")


def init_app(app: Flask) -> None:
    """A fresh, empty board for each app, and its posting rates."""
    app.extensions[EXTENSION] = Scoreboard()
    app.extensions[BUCKETS] = {
        "client": TokenBuckets("client", CLIENT_BURST, CLIENT_PER_SECOND),
        "team": TokenBuckets("team", TEAM_BURST, TEAM_PER_SECOND),
    }


def board() -> Scoreboard:
    return current_app_object().extensions[EXTENSION]


def bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def check_token(team: str, token: str | None) -> None:
    """With rooms (a `token_check` installed), only the team's own token posts into its rows."""
    if board().may_post(team, token):
        return
    if token is None:
        detail = f"grades for team {team} need its token: 'Authorization: Bearer <token>' (bankapp exercise --token)"
        challenge = {"WWW-Authenticate": 'Bearer realm="bankapp scoreboard"'}
        raise Refusal(401, "team-token-required", "Team token required", detail, headers=challenge, team=team)
    raise Refusal(403, "wrong-team-token", "Wrong team token", f"the token is not team {team}'s", team=team)


def take(kind: str, key: str) -> None:
    try:
        current_app_object().extensions[BUCKETS][kind].take(key)
    except RateLimited as limited:
        headers = {"Retry-After": limited.retry_after_header}
        retry_after_s = math.ceil(limited.retry_after)
        raise Refusal(
            429, "rate-limited", "Too many grades", str(limited), headers, limit=kind, retry_after_s=retry_after_s
        ) from None


@bp.post("/scoreboard", responses={200: RowOut, 401: Problem, 403: Problem, 409: Problem, 422: Problem, 429: Problem})
def post_grade(body: GradeIn):
    """Keep a team's grade for an exercise (its latest, and its best if better); answers the team's row. 422 names a
    bad or unknown field (a grade carries no code), 401/403 a missing or wrong team token (with rooms), 409 a board
    full (teams or rows), 429 too many grades (with Retry-After)."""
    request = current_request()
    take("client", request.remote_addr or "unknown")
    check_token(body.team, bearer(request.headers.get("Authorization", "")))
    take("team", body.team)
    try:
        row = board().record(body.team, body.exercise, body.passed, body.schedules, body.speed_ratio)
    except ScoreboardFull as full:
        raise Refusal(
            409, "scoreboard-full", "Scoreboard full", str(full), limit=full.limit, full=full.what, team=full.team
        ) from None
    return row.as_json()


@bp.get("/scoreboard", responses={200: ScoreboardOut, 304: {"description": "the board as the ETag sent"}})
def get_scoreboard():
    """Every team's grades, a row per exercise with its best and latest; self-reported (judged on the trainees'
    machines, never by this server). With an `ETag`: a poll that sends it back (`If-None-Match`) while the board is
    unchanged gets a 304, so a dashboard reading a full board every second costs next to nothing."""
    shown = board()
    etag = shown.etag()  # read before the rows: a grade landing in between makes the next poll read it again
    if etag in current_request().if_none_match:
        return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": "no-cache"})
    response = jsonify(shown.as_json())
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.delete("/admin/scoreboard", responses={200: ClearedOut})
def clear_scoreboard():
    """Empty the scoreboard (an admin route: the admin token when the server has one)."""
    return {"cleared": board().clear()}
