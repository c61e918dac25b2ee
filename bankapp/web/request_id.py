"""`X-Request-Id`: every answer names its request, and every write the domain records names it too.

A client that sends a well-formed `X-Request-Id` gets it back, so it can
find its own request in `/debug/races` (and in its own logs); any other
request gets a new one. Well-formed means 1 to 64 characters of
`A-Z a-z 0-9 . _ -`: enough for a UUID, a trace id or `locust-3-17`, and
nothing that could forge a log line or a header. A malformed one is not
refused (the id is a label, not an input the request needs): it is
replaced.

The id reaches the domain, which knows nothing of Flask, through
`forensics.CALLER` (a `ContextVar`), set before the view runs by the
middleware every request passes (`every_request`), with what the request
does ("deposit", "transfer"): the store reads both when it records a write.
"""

from __future__ import annotations

import functools
import random
import re

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
