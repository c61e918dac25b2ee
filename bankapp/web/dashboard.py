"""`GET /`: the live dashboard, one template and one small script, no build step.

The page is static; its script polls `/stats` and `/debug/locks` about
once a second (plain `fetch`, one request each, never a held-open
stream: a server-sent stream would keep one of the gthread threads per open
page) and switches settings with `PATCH /admin/config`. The choices of each
control come from the settings' own types, so a guard added there shows up
here. Every asset is served by the app from `static/`: the chart library is
vendored under `static/vendor/<name>-<version>/` with its licence, and
nothing is fetched from elsewhere, so the page works in a room with no
internet.
"""

from __future__ import annotations

from typing import get_args

from flask import current_app, render_template
from flask_openapi3 import Tag

from ..settings import Config
from ..settings.lessons import LESSONS
from .views.dispatch import Blueprint as APIBlueprint

bp = APIBlueprint("dashboard", __name__, abp_tags=[Tag(name="dashboard", description="the live dashboard")])

#: The vendored chart library: uPlot, small and fast for time series (see docs/dashboard.md).
UPLOT = "vendor/uplot-1.6.32"
HTML_RESPONSE = {"description": "the dashboard page", "content": {"text/html": {"schema": {"type": "string"}}}}


def choices(setting: str) -> tuple[str, ...]:
    """The values a `Literal` setting accepts, in the order they are declared."""
    return get_args(Config.model_fields[setting].annotation)


@bp.get("/", responses={200: HTML_RESPONSE})
def dashboard():
    """The live dashboard: guards and their controls, deposits, checkout, transfers, threads; in a room, the
    instructor's console (`static/console.js`); `?team=NAME`, a team's own."""
    controls = {name: choices(name) for name in ("deposit_guard", "checkout_guard", "transfer_policy")}
    room = current_app.extensions["bankapp.room"]
    lessons = [(number, lesson.title.replace("`", "")) for number, lesson in LESSONS.items() if lesson.server]
    return render_template("dashboard.html", controls=controls, uplot=UPLOT, room_open=not room.alone, lessons=lessons)
