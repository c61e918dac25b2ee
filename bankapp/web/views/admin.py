"""Settings at runtime, reset, the operator's way out of a deadlock, and replays of an interleaving."""

from flask import request
from flask_openapi3 import Tag

from ...explore import replay_anywhere
from ..history import history_of
from ..schemas import BreakOut, ConfigOut, ConfigPatch, InterleaveIn, InterleaveOut, Problem, ResetOut
from . import lab
from .dispatch import Blueprint as APIBlueprint

bp = APIBlueprint(
    "admin", __name__, abp_tags=[Tag(name="admin", description="settings, reset, breaking deadlocks, replays")]
)


#: Documents the body; `ConfigHolder.patch` validates it, naming the setting (the body is read by `body`).
PATCH_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": ConfigPatch.model_json_schema()}}}
}


@bp.get("/admin/config", responses={200: ConfigOut})
def get_config():
    """The settings in force."""
    return lab().config().public()


@bp.patch("/admin/config", responses={200: ConfigOut, 422: Problem}, openapi_extensions=PATCH_BODY)
def patch_config():
    """Change settings live; requests that start afterwards use them."""
    return lab().settings.patch(request.get_json()).public()


@bp.post("/admin/reset", responses={200: ResetOut, 503: Problem})
def reset():
    """Restore balances (and stock) and zero every counter; settings stay.

    Atomic with respect to requests: it breaks the deadlocks that hold
    requests up, waits for those in flight (new ones wait for it), then
    resets. 503 naming what blocks it when some request is still running
    after 10 s; then nothing changed.
    """
    outcome = lab().reset()
    history_of(lab()).clear()  # the dashboard's history starts again
    return {"status": "reset", **outcome, "settings": lab().config().public()}


@bp.post("/admin/break-deadlocks", responses={200: BreakOut})
def break_deadlocks():
    """Break every deadlock nobody gives up (`lock_timeout_ms` none), as `pg_terminate_backend` would.

    In each cycle of account locks, and each guard whose holders all wait
    for it (a batch deposit under `lock`), one request is the victim: it
    rolls back, releases its locks and answers 409 `deadlock`.
    """
    return {"deadlocks_broken": lab().break_deadlocks()}


@bp.post("/admin/interleave", responses={200: InterleaveOut, 422: Problem, 503: Problem})
def interleave(body: InterleaveIn):
    """Replay one interleaving: real threads paused at each step (read, write, acquire, release) and released
    in the order of `schedule`, in a scratch bank of their own under the settings in force.

    A step a guard makes wait is shown waiting and the rest of the schedule
    goes on; a schedule nobody can finish ends within `lock_timeout_ms`.
    422 `invalid-schedule` names the bad step; 503 while another replay runs. On the postgres store, the
    database guards and the transfer policies replay on its database (a step is a SQL statement), in a
    scratch schema: the schedules `POST /admin/explore` found there.
    """
    return replay_anywhere(lab().config(), body.scenario, body.guard, body.schedule)  # postgres: the SQL steps
