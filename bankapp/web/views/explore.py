"""Every interleaving of a scenario, explored in this process (`bankapp explore --url`), and the last one kept."""

from typing import Any, Literal

from flask import current_app, request
from flask_openapi3 import Tag
from pydantic import BaseModel, Field

from ...explore import explore as explore_schedules
from ...interleave import SCENARIOS
from ...rooms import DEFAULT_TEAM, TEAM_NAME
from ..schemas import Problem, Strict
from . import lab
from .dispatch import Blueprint as APIBlueprint

bp = APIBlueprint("explore", __name__, abp_tags=[Tag(name="explore", description="every interleaving, judged")])


class ExploreIn(Strict):
    """One exploration: a scenario of the replays, its guard, how many threads, and a bound."""

    scenario: Literal[tuple(SCENARIOS)] = Field(description="a scenario of /admin/interleave")  # type: ignore[valid-type]
    guard: str | None = Field(
        None, max_length=64, description="the guard or transfer policy; default: the one in force"
    )
    threads: int | None = Field(None, ge=1, le=3, description="how many threads; default: the scenario's least")
    max_schedules: int | None = Field(None, ge=1, le=1_000_000, description="stop after this many schedules")


class ExploreOut(BaseModel, extra="allow"):
    """Every schedule of the scenario, judged: counts, outcomes by kind, the shortest failing schedule."""

    scenario: str
    guard: str
    threads: int
    schedules: int = Field(description="schedules run, one of each class of equivalent ones")
    equivalent: int = Field(description="schedules skipped as equivalent to one run")
    complete: bool
    outcomes: dict[str, int] = Field(description="schedules by outcome, each run counting for its class")
    counterexample: dict[str, Any] | None = Field(description="the shortest failing schedule, or null")


class LastExploreOut(BaseModel):
    """The last exploration this server ran, as `POST /admin/explore` answered it, or null."""

    exploration: ExploreOut | None


@bp.post("/admin/explore", responses={200: ExploreOut, 422: Problem})
def explore(body: ExploreIn):
    """Try every schedule of a scenario (one of each class of equivalent ones) in scratch labs of their own,
    under the settings in force, in this process; what `bankapp explore --url` prints. On the postgres store
    the database guards too, on a scratch schema. 422 names a bad value."""
    result = explore_schedules(lab().config(), body.scenario, body.guard, body.threads, body.max_schedules)
    current_app.extensions[exploration_key()] = result  # the dashboard draws its counterexample
    return result


@bp.get("/debug/explore", responses={200: LastExploreOut})
def last_exploration():
    """The last exploration this server ran (`POST /admin/explore`, `bankapp explore --url`), or null:
    the dashboard draws its shortest failing schedule, a lane per thread."""
    return {"exploration": current_app.extensions.get(exploration_key())}


def exploration_key() -> str:
    """Where the last exploration is kept: the default team's as before rooms, each other team's its own."""
    team = request.environ.get(TEAM_NAME)
    return "bankapp.exploration" if team in (None, DEFAULT_TEAM) else f"bankapp.exploration:{team}"
