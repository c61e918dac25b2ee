"""The app factory: `create_app(config)` builds a fresh lab and its routes."""

from __future__ import annotations

import os
import threading
from typing import Any

from flask import request
from flask_openapi3 import Info
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from . import admin_auth, contract, idempotency, problems
from .lab import Lab
from .problems import Problem
from .settings import Config, load
from .views import accounts, admin, introspection

#: Bodies above this answer 413 before anything reads them.
MAX_BODY_BYTES = 1024 * 1024


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
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["bankapp"] = Lab(config)
    problems.init_app(app)
    idempotency.init_app(app)
    for blueprint in (introspection.bp, accounts.bp, admin.bp):
        app.register_api(blueprint)
    admin_auth.init_app(app)  # before the body checks: a stranger learns nothing about bodies
    app.before_request(require_json_body)
    app.after_request(add_served_by)
    app.add_url_rule("/openapi.json", "openapi_json", lambda: app.api_doc)
    contract.init_docs(app)
    return app


def require_json_body():
    """A body, where one is sent, must be well-formed JSON."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.method not in {"POST", "PUT", "PATCH"} or not (request.content_length or chunked):
        return None
    if not request.is_json:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Content-Type must be application/json, got {request.mimetype or 'none'}",
        )
    if chunked and len(request.get_data()) >= MAX_BODY_BYTES:
        # A chunked body has no length to refuse up front: werkzeug stops
        # reading at the limit, and what it read would pass for the body.
        raise RequestEntityTooLarge()
    try:
        request.get_json(force=True)
    except RequestEntityTooLarge:
        raise
    except BadRequest:
        raise Problem(400, "malformed-json", "Malformed JSON", "the request body is not valid JSON") from None
    return None


def add_served_by(response):
    """Which process and thread served this request."""
    response.headers["X-Served-By"] = f"{os.getpid()}/{threading.current_thread().name}"
    return response
