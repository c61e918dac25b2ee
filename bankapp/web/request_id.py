"""`X-Request-Id`: every answer names its request, and every write the domain records names it too.

A client that sends a well-formed `X-Request-Id` gets it back, so it can
find its own request in `/debug/races` (and in its own logs); any other
request gets a new one. Well-formed means 1 to 64 characters of
`A-Z a-z 0-9 . _ -`: enough for a UUID, a trace id or `locust-3-17`, and
nothing that could forge a log line or a header. A malformed one is not
refused (the id is a label, not an input the request needs): it is
replaced.

The id reaches the domain, which knows nothing of Flask, through
`forensics.CALLER` (a `ContextVar`), set here before the view runs, with
what the request does ("deposit", "transfer"): the store reads both when it
records a write.
"""

from __future__ import annotations

import functools
import random
import re

from flask import Flask

from ..lab.forensics import CALLER, Caller

HEADER = "X-Request-Id"
ENVIRON_KEY = "HTTP_X_REQUEST_ID"  # the header as WSGI names it: one dict lookup on the hot path
WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: What a request does, as a write records it, by the last part of its path; others are named after it.
OPERATIONS = {"withdraw": "withdrawal", "transfers": "transfer"}

#: The header in the OpenAPI document, on every response.
DOCUMENTED = {
    "description": "the client's X-Request-Id when it sent a well-formed one (1 to 64 characters of A-Z a-z 0-9 "
    ". _ -), else a new one; /debug/races names writes by it",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
}


def new_request_id() -> str:
    """16 hex digits: unique enough to tell a lab's requests apart, and not a secret."""
    return f"{random.getrandbits(64):016x}"


@functools.lru_cache(maxsize=4096)  # a lab has few paths; any path a client invents costs one entry
def operation(path: str) -> str | None:
    """What a request to `path` does, as a write records it: `/accounts/acc-00/batch-deposit` is "batch deposit"."""
    last = path.rstrip("/").rpartition("/")[2]
    return OPERATIONS.get(last, last.replace("-", " ")) or None


class RequestIds:
    """WSGI middleware around the app: names every request, hands the name to the domain, answers with it.

    A middleware rather than Flask hooks: it reads the header straight from
    the WSGI environ and adds its own to the answer's header list, where a
    `before_request` and an `after_request` hook would cost the hot path a
    few microseconds each (Flask checks each hook for a coroutine, and
    `request` is a proxy). Every answer of the app passes here, an error's
    too; gunicorn's own refusals get theirs in `bankapp.worker`.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        sent = environ.get(ENVIRON_KEY)
        request_id = sent if sent and WELL_FORMED.fullmatch(sent) else new_request_id()
        token = CALLER.set(Caller(request_id, operation(environ.get("PATH_INFO", ""))))

        def answer(status, headers, exc_info=None):
            headers.append((HEADER, request_id))
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, answer)
        finally:
            CALLER.reset(token)  # the view has run: this thread's writes belong to nobody until its next request


def init_app(app: Flask) -> None:
    app.wsgi_app = RequestIds(app.wsgi_app)
