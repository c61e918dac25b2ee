"""What every request passes through: one WSGI middleware around the app, and one step before the view.

Around every request: it gets a name (`X-Request-Id`, see `request_id`),
handed to the domain for the writes it records; it is timed into the latency
histogram (see `metrics`); and it says who served it (`X-Served-By`), which
`/stats` lists and the lab counts (`lab.served()`). Before its view: the
Host check and the cross-site check (see `admin_auth`), the admin check (see
`admin_auth`) and the latency's labels.

These were Flask hooks once (two `before_request`, two `after_request`).
Flask calls each hook through its machinery: it asks whether the hook is a
coroutine, walks the request's blueprints, and the hook reads `request` and
`g` through proxies. That cost a deposit more time than its whole domain
part, so here they are:

- `EveryRequest`, a WSGI middleware: reads the headers it needs straight
  from the environ and adds its own to the answer's header list. Every
  answer of the app passes here, an error's too; gunicorn's own refusals get
  their `X-Request-Id` in `bankapp.server.worker`.
- `before_view`, called from the app's `preprocess_request` (Flask's own
  hook point, before any `before_request` hook): what needs the routed
  request or the settings. The settings may be a database round trip that
  fails (the postgres store), and a refused admin request is a problem, so
  this runs inside Flask, where an error becomes an answer. It hands the
  latency's labels to the middleware in the environ.
"""

from __future__ import annotations

import os
import threading
import time

from flask import Flask, Request

from ..lab import LabLike
from ..lab.forensics import CALLER, Caller
from ..rooms import TEAM, TEAM_NAME
from . import admin_auth
from .history import after_answer
from .metrics import Metrics, guard_label
from .request_id import ENVIRON_KEY, HEADER, WELL_FORMED, new_request_id, operation
from .views import rooms
from .views.rooms import is_metrics

SERVED_BY = "X-Served-By"
#: Where `before_view` leaves (route, guard) for the middleware: a request that never got there is not timed.
LATENCY_LABELS = "bankapp.latency_labels"


#: This thread's `<pid>/<thread name>` (`served_by`), made on its first request; a fresh one in a forked child.
_thread: threading.local = threading.local()


def _forget_threads() -> None:
    global _thread
    _thread = threading.local()


os.register_at_fork(after_in_child=_forget_threads)


class EveryRequest:
    """WSGI middleware around the app: names each request, times it, says who served it, and after the
    answer has been sent takes the history's sample when one is due (`history.after_answer`).

    One layer for all of it: each middleware is a call on every request, and the sampling needs the
    request's lab as much as the count of requests served does."""

    def __init__(self, wsgi_app, lab: LabLike, metrics: Metrics):
        self.wsgi_app = wsgi_app
        self.lab = lab
        self.metrics = metrics

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        sent = environ.get(ENVIRON_KEY)
        request_id = sent if sent and WELL_FORMED.fullmatch(sent) else new_request_id()
        token = CALLER.set(Caller(request_id, operation(environ.get("PATH_INFO", ""))))
        try:
            served_by = _thread.served_by
        except AttributeError:
            served_by = _thread.served_by = f"{os.getpid()}/{threading.current_thread().name}"

        def answer(status, headers, exc_info=None):
            headers.append((HEADER, request_id))
            headers.append((SERVED_BY, served_by))
            return start_response(status, headers, exc_info)

        try:
            response = self.wsgi_app(environ, answer)
            team = environ.get(TEAM)  # routed: the team whose lab served it, if any
            lab = self.lab if team is None else team.lab
            labels = environ.get(LATENCY_LABELS)
            if labels is not None:  # the guard the request ran under: known while it is still the caller
                guard = guard_label(labels[1], lab.settings.of_request)
        finally:
            CALLER.reset(token)  # the view has run: this thread's writes belong to nobody until its next request
        if labels is not None:
            self.metrics.observe(environ.get("REQUEST_METHOD", ""), labels[0], guard, time.perf_counter() - started)
        self.metrics.servers.record(served_by)
        lab.served()
        return after_answer(lab, environ, response)


def before_view(request: Request, lab: LabLike, metrics: Metrics) -> None:
    """After routing, before the view: the latency's route label, and the admin check (with the team's checks of
    a room: `rooms_checks.check_team`).

    The checks read only what is this process's own (its host, allowed
    hosts and admin token, never changed by a PATCH), so they take the
    settings without a round trip (`settings.cached`): on the postgres store
    a request reads the shared settings when its work needs them, and a
    deposit in the same round trip as its write (see
    `bankapp.postgres.settings`). The guard label is read after the view,
    from the settings the request ran under.
    """
    config = lab.settings.cached
    environ = request.environ
    team = environ.get(TEAM)
    request.environ[LATENCY_LABELS] = metrics.labels(request)
    admin_auth.check_host(request, config)
    if TEAM_NAME in environ or is_metrics(request):
        rooms.check_team(request, config, team)
    else:
        admin_auth.require_admin_token(request, config)
    admin_auth.check_same_site(request, config)


def init_app(app: Flask, lab: LabLike, metrics: Metrics) -> None:
    # Flask's documented way to wrap its WSGI app; mypy does not let a method be replaced on an instance
    app.wsgi_app = EveryRequest(app.wsgi_app, lab, metrics)  # type: ignore[method-assign]
