"""The app factory: `create_app(config)` builds a fresh lab and its routes."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_openapi3 import Info

from ..lab import make_lab
from ..settings import Config, load
from . import admin_auth, contract, dashboard, idempotency, metrics, problems, request_id
from .body import MAX_BODY_BYTES, BodyRequest
from .views import accounts, admin, checkout, introspection, transfers


def create_app(config: Config | dict[str, Any] | None = None) -> contract.BankAPI:
    """A new app with its own lab. `config` is a `Config`, or overrides of
    the defaults and `BANKAPP_*` variables (as tests pass them)."""
    if not isinstance(config, Config):
        config = load(config)
    app = contract.BankAPI(
        __name__,
        info=Info(title="bankapp", version="1.0", description="A concurrency lab served over HTTP."),
        validation_error_status=422,
        validation_error_callback=problems.validation_error_response,
        doc_prefix="/docs",
        doc_url="/openapi.json",
    )
    app.request_class = BodyRequest  # one body reader for every route (see `body`)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["bankapp"] = lab = make_lab(config)
    problems.init_app(app)
    metrics.init_app(app, lab, config.workers)  # first of the before_request hooks: every request is timed
    request_id.init_app(app)  # around it all: every answer, a refusal too, names its request
    idempotency.init_app(app, shared=lab.answers)
    for blueprint in (introspection.bp, accounts.bp, checkout.bp, transfers.bp, admin.bp, dashboard.bp):
        app.register_api(blueprint)
    admin_auth.init_app(app)
    app.after_request(add_served_by)
    app.add_url_rule("/openapi.json", "openapi_json", lambda: app.api_doc)
    contract.init_docs(app)
    return app


def add_served_by(response):
    """Which process and thread served this request (and, for `/stats`, that this worker served one)."""
    response.headers["X-Served-By"] = metrics.served_by()
    current_app.extensions["bankapp"].served()
    return response
