"""The app factory: `create_app(config)` builds a fresh lab and its routes."""

from __future__ import annotations

from typing import Any

from flask.globals import request_ctx
from flask.json.provider import DefaultJSONProvider
from flask_openapi3 import Info

from ..boot import build_lab, make_team_lab
from ..lab.plugged import Plugged
from ..rooms import Room, TeamRouting
from ..settings import RESERVED_THREADS, Config, load
from . import contract, dashboard, every_request, history, idempotency, metrics, problems
from .body import MAX_BODY_BYTES, BodyRequest
from .scoreboard import RoomTokens, install_token_check
from .views import (
    accounts,
    admin,
    checkout,
    customers,
    explore,
    introspection,
    isolation,
    rooms,
    scoreboard,
    transfers,
)


class BankApp(contract.BankAPI):
    """The app: flask-openapi3's, its document made honest (`contract`), one step before every view."""

    def preprocess_request(self):
        """`every_request.before_view`, then Flask's own (`before_request` hooks), if any are added.

        Flask's hook point itself rather than a hook: a hook costs every
        request Flask's machinery around it (see `every_request`), and
        Flask's own step walks the request's blueprints even when no hook
        is registered (2 us a request).
        """
        every_request.before_view(request_ctx.request, self.extensions["bankapp"], self.extensions["bankapp.metrics"])
        if self.before_request_funcs or self.url_value_preprocessors:
            return super().preprocess_request()
        return None

    def process_response(self, response):
        """Flask's, when it has something to do: an `after_request` hook, an `after_this_request`, a session
        (only with a secret key). bankapp has none of them, and the walk finding so costs 3 us a request."""
        if self.after_request_funcs or self.secret_key or request_ctx._after_request_functions:
            return super().process_response(response)
        return response


def create_app(config: Config | dict[str, Any] | None = None, plugged: Plugged | None = None) -> BankApp:
    """A new app with its own lab. `config` is a `Config`, or overrides of
    the defaults and `BANKAPP_*` variables (as tests pass them); `plugged`, a
    trainee's code loaded at start (`bankapp serve --exercise`), never by a request."""
    if not isinstance(config, Config):
        config = load(config)
    app = BankApp(
        __name__,
        info=Info(
            title="bankapp",
            version="1.0",
            description="A concurrency lab served over HTTP. In a room (POST /admin/rooms) every route is also "
            "served under /teams/{team}/, or with an X-Team header, for that team's own lab.",
        ),
        validation_error_status=422,
        validation_error_callback=problems.validation_error_response,
        doc_prefix="/docs",
        doc_url="/openapi.json",
    )
    # Werkzeug answers a path with `//` (as `acc-00%2f/deposit` decodes to) with a 308 to the path merged:
    # a client that follows it re-POSTs to another account. A path no route matches as sent is a 404 problem.
    # (`strict_slashes` stays: it redirects only to add a slash a rule ends with, and no API rule does.)
    app.url_map.merge_slashes = False
    app.request_class = BodyRequest  # one body reader for every route (see `body`)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    assert isinstance(app.json, DefaultJSONProvider)  # Flask's own, which can keep keys in order
    app.json.sort_keys = False
    app.extensions["bankapp"] = lab = build_lab(config, plugged=plugged)
    problems.init_app(app)
    timing = metrics.init_app(app, lab, config.workers)
    # a room: the default team is this lab; each team made later gets its own, through the composition root
    room = Room(
        lab,
        lambda team, token_digest: make_team_lab(config, team, token_digest),
        config.threads - RESERVED_THREADS,
        registered=getattr(lab, "teams", None),  # the postgres store's register: every worker's room
    )
    read_freeze, write_freeze = getattr(lab, "room_frozen", None), getattr(lab, "freeze_room", None)
    if read_freeze and write_freeze:  # the postgres store: the freeze is every worker's
        room.shared_freeze = (read_freeze, write_freeze)
    app.extensions["bankapp.room"] = timing.room = room
    app.wsgi_app = TeamRouting(app.wsgi_app, room)  # type: ignore[method-assign]  # the team, before the view
    # around it all: every answer, a refusal too, names its request, is timed, says who served it, and the
    # dashboard's history takes its sample after an answer when one is due
    every_request.init_app(app, lab, timing)
    history.init_app(app)  # the dashboard's history: GET /dashboard/history
    idempotency.init_app(app, shared=lab.answers)
    scoreboard.init_app(app)
    install_token_check(app.extensions, RoomTokens(room))  # in a room, a grade needs its team's token
    blueprints = (
        accounts.bp,
        customers.bp,
        checkout.bp,
        transfers.bp,
        admin.bp,
        isolation.bp,
        explore.bp,
        scoreboard.bp,
        dashboard.bp,
        rooms.bp,
    )
    for blueprint in (introspection.bp, *blueprints):
        app.register_api(blueprint)
    app.add_url_rule("/openapi.json", "openapi_json", lambda: app.api_doc)
    contract.init_docs(app)
    return app
