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

import random
import re

from flask import Flask, g, request

from ..lab.forensics import CALLER, NOBODY, Caller

HEADER = "X-Request-Id"
ENVIRON_KEY = "HTTP_X_REQUEST_ID"  # the header as WSGI names it: one dict lookup on the hot path
WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: What a request does, as a write records it, by view; other views are named after themselves.
OPERATIONS = {"withdraw": "withdrawal", "batch_deposit": "batch deposit"}

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


def start() -> None:
    """Name this request, and hand its id and operation to the domain."""
    sent = request.environ.get(ENVIRON_KEY)
    request_id = g.request_id = sent if sent and WELL_FORMED.fullmatch(sent) else new_request_id()
    view = (request.endpoint or "").rpartition(".")[2]
    CALLER.set(Caller(request_id, OPERATIONS.get(view, view.replace("_", " ")) or None))


def answer(response):
    response.headers[HEADER] = g.get("request_id") or new_request_id()
    return response


def finish(_error=None) -> None:
    """The thread serves the next request, or nothing: its writes belong to nobody until then."""
    CALLER.set(NOBODY)


def init_app(app: Flask) -> None:
    """Call before the other `before_request` hooks but the timing one, so that a refusal has its id too."""
    app.before_request(start)
    app.after_request(answer)
    app.teardown_request(finish)
