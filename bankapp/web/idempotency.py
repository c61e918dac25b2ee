"""`Idempotency-Key`: a retried request answers the first answer, applied once.

A client that sent a deposit and got no answer (a timeout, a reset
connection) cannot know whether it was applied. Retrying blindly may apply it
twice; not retrying may lose it. With a key, it retries safely:

- the first request with a key runs and its answer is remembered;
- a retry with the same key and the same request (method, path, query, and
  the body as validated, however it was framed or its numbers spelt) gets
  that answer again, with
  `Idempotent-Replayed: true`, and applies nothing;
- the same key with another request is a client bug: 422;
- retries that arrive while the first is still running wait for its answer
  and replay it (or, after `WAIT_TIMEOUT` seconds, get a 409 to retry later):
  exactly one of them runs.

Only successful (2xx) answers are remembered. Every refusal here changes
nothing (see `problems`), so running a retry again after an error is safe,
and it is what a client wants: a 503 lock timeout or admission rejection is
worth retrying, and a 409 insufficient funds may succeed after a deposit.
Remembering them would pin the key to a failure for its whole lifetime.

Memory is bounded: at most `MAX_KEYS` keys, each kept `TTL` seconds from its
first use; the oldest go first. Keys are one per logical operation and
retries come soon after the first try, so first-in first-out is enough.

On the postgres store the answers are the fleet's (`SharedStore` over the
lab's `answers`, see `bankapp.postgres.answers`): a retry that reaches
another worker, or another machine, is recognised there too.

A view adopts it with one line, under its route decorator::

    @bp.post("/transfers", responses={200: TransferOut, **ERRORS})
    @idempotent
    def transfer(body: TransferIn): ...
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from flask import Flask, Response, current_app, request

from ..lab.store import StoreUnavailable
from ..rooms import DEFAULT_TEAM, TEAM_NAME
from .problems import Problem
from .views.dispatch import current_request

HEADER = "Idempotency-Key"
ENVIRON_KEY = "HTTP_IDEMPOTENCY_KEY"  # the header as WSGI names it: one dict lookup on the hot path
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
MAX_KEYS = 10_000
TTL = 24 * 3600.0
#: How long a retry waits for the first request with its key to answer.
WAIT_TIMEOUT = 30.0
EXTENSION = "bankapp.idempotency"

#: Problems this adds to an idempotent operation, for the OpenAPI document.
PROBLEMS = {
    "400": "the Idempotency-Key header is empty, longer than 255 characters, or sent twice",
    "409": "a request with this Idempotency-Key is still running; retry later",
    "422": "this Idempotency-Key was used for another request",
}


@dataclass
class Answer:
    """A response as it was sent, to be sent again."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]

    @classmethod
    def of(cls, response: Response) -> Answer:
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return cls(response.status_code, response.get_data(), headers)

    def replay(self) -> Response:
        response = Response(self.body, status=self.status, headers=self.headers)
        response.headers[REPLAYED_HEADER] = "true"
        return response


class Done(Protocol):
    """How a request waits for the first run's answer: a `threading.Event` here, `_Polled` across workers."""

    def set(self) -> None: ...

    def wait(self, timeout: float) -> bool: ...


@dataclass
class Entry:
    """One key: the request it was first used for, and its answer once known."""

    fingerprint: str
    created: float
    done: Done = field(default_factory=threading.Event)
    answer: Answer | None = None


class KeyReused(Exception):
    pass


class IdempotencyStore:
    """Remembered answers by key, at most `max_keys` of them for `ttl` seconds."""

    def __init__(self, max_keys: int = MAX_KEYS, ttl: float = TTL, clock: Callable[[], float] = time.monotonic):
        self.max_keys = max_keys
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def claim(self, key: str, fingerprint: str) -> tuple[Entry, bool]:
        """The entry of `key`, and whether the caller is the one to run it."""
        with self._lock:
            now = self._clock()
            while self._entries and next(iter(self._entries.values())).created + self.ttl <= now:
                self._entries.popitem(last=False)
            entry = self._entries.get(key)
            if entry is not None:
                if entry.fingerprint != fingerprint:
                    raise KeyReused(key)
                return entry, False
            entry = self._entries[key] = Entry(fingerprint, now)
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
            return entry, True

    def complete(self, key: str, entry: Entry, answer: Answer | None) -> None:
        """Remember `answer`, or with None forget the key (the run failed), and
        wake whoever waits for it."""
        with self._lock:
            entry.answer = answer
            if answer is None and self._entries.get(key) is entry:
                del self._entries[key]
        entry.done.set()


class SharedStore:
    """`IdempotencyStore`'s protocol over answers the fleet shares (the postgres store's `SharedAnswers`):
    a retry is recognised whichever worker or machine it reaches. A retry that finds the first request
    still running waits by polling the database (`POLL` seconds apart), not on an event."""

    POLL = 0.01
    #: Seconds between tries of the outcomes the database missed.
    RETRY = 0.5

    def __init__(self, shared, ttl: float = TTL):
        self.shared = shared
        self.ttl = ttl
        self._pending: dict[str, tuple[tuple | None, float]] = {}  # key: (outcome, when it was missed)
        self._pending_lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def claim(self, key: str, fingerprint: str) -> tuple[Entry, bool]:
        while True:
            entry = Entry(fingerprint, time.monotonic())
            if self.shared.claim(key, fingerprint, self.ttl):
                return entry, True
            seen = self.shared.peek(key)
            if seen is None:  # the first run failed (or expired) between the claim and the read: claim again
                continue
            if seen.fingerprint != fingerprint:
                raise KeyReused(key)
            if seen.answer is not None:
                entry.answer = Answer(*seen.answer)
                entry.done.set()
            else:
                entry.done = _Polled(self, key, entry)
            return entry, False

    def complete(self, key: str, entry: Entry, answer: Answer | None) -> None:
        """Write the key's outcome; if the database is away, write it in the background once it is back.
        The request still answers what it did: a 503 would tell the client an applied deposit was not,
        and the key would stay claimed, answering 409 to every retry, for its whole lifetime."""
        outcome = None if answer is None else (answer.status, answer.body, answer.headers)
        try:
            self.shared.complete(key, outcome)
        except StoreUnavailable:
            self._later(key, outcome)
        finally:
            entry.done.set()

    def _later(self, key: str, outcome) -> None:
        with self._pending_lock:
            self._pending[key] = (outcome, time.monotonic())
            if self._writer is None or not self._writer.is_alive():  # none yet, or this is a forked worker
                self._writer = threading.Thread(target=self._write_pending, name="bankapp-answers", daemon=True)
                self._writer.start()

    def _write_pending(self) -> None:
        """Every `RETRY` seconds, the outcomes the database missed, until it takes them all (a key past its
        lifetime is dropped: its row is another request's by then). A worker that stops first loses them,
        as one killed between an operation and its answer: those keys answer 409 until they expire."""
        while True:
            time.sleep(self.RETRY)
            with self._pending_lock:
                pending = list(self._pending.items())
            for key, (outcome, since) in pending:
                if time.monotonic() - since < self.ttl:
                    try:
                        self.shared.complete(key, outcome)
                    except StoreUnavailable:
                        break  # still away: all of them later
                with self._pending_lock:
                    if self._pending.get(key, (None, None))[1] == since:
                        del self._pending[key]
            with self._pending_lock:
                if not self._pending:
                    self._writer = None
                    return


class _Polled:
    """An `Entry.done` that waits for another worker's answer by reading the key's row."""

    def __init__(self, store: SharedStore, key: str, entry: Entry):
        self.store, self.key, self.entry = store, key, entry
        self._set = False

    def set(self) -> None:
        self._set = True

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._set:
            seen = self.store.shared.peek(self.key)
            if seen is None or seen.fingerprint != self.entry.fingerprint:
                return True  # the first run failed: the caller claims again (and meets whoever won it)
            if seen.answer is not None:
                self.entry.answer = Answer(*seen.answer)
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(self.store.POLL, max(0.0, deadline - time.monotonic())))
        return True


def init_app(app: Flask, store: IdempotencyStore | SharedStore | None = None, shared=None) -> None:
    """Remember answers in this process, or, given the lab's `shared` answers, in the fleet's database."""
    if store is None:
        store = IdempotencyStore() if shared is None else SharedStore(shared)
    app.extensions[EXTENSION] = store


def idempotent(view: Callable) -> Callable:
    """Make `view` honour `Idempotency-Key`; without the header it just runs."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = current_request().environ.get(ENVIRON_KEY)  # Flask's `request` without its proxy: every request asks
        if key is None:
            return view(*args, **kwargs)
        check_key(key)
        team = current_request().environ.get(TEAM_NAME)  # a room's teams each have keys of their own
        if team not in (None, DEFAULT_TEAM):
            scoped = f"team:{team}:{key}"
        else:  # the default team's keys as they were, unless one could pass for a team's scoped key
            scoped = f"default:{key}" if key.startswith(("team:", "default:")) else key
        return run_once(current_app.extensions[EXTENSION], scoped, fingerprint(kwargs), lambda: view(*args, **kwargs))

    wrapper.__dict__["__idempotent__"] = True  # read back by `documented_operations`
    return wrapper


def check_key(key: str) -> None:
    if "," in key:
        # WSGI servers join repeated headers with a comma: two keys for one request, which one holds?
        raise Problem(
            400,
            "bad-idempotency-key",
            "Bad Idempotency-Key",
            f"{HEADER}: one header with one key, without a comma (two {HEADER} headers were sent, or a list)",
        )
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise Problem(
            400,
            "bad-idempotency-key",
            "Bad Idempotency-Key",
            f"{HEADER}: must be 1 to {MAX_KEY_LENGTH} characters, not blank (got {len(key)})",
        )


def fingerprint(validated: dict | None = None) -> str:
    """What makes two requests the same: method, path, query and the request as validated.

    `validated` are the view's arguments, the models flask-openapi3 built
    from the body, path and query: `{"amount": 7}`, `{"amount": 7.0}` and
    `{"amount": 7e0}` are one deposit of 7 (the integer rule,
    `bankapp.settings.whole_number`), so a retry that spells its amount
    another way replays rather than being refused as another request.
    Without models, the JSON body the body reader parsed, whatever its
    framing, canonical so that spacing and key order do not count (a
    number with a fraction or an exponent kept as written, tagged so that
    it never equals a string)."""
    models = {name: value.model_dump(mode="json") for name, value in (validated or {}).items() if _is_model(value)}
    canonical = json.dumps(
        [request.method, request.path, request.query_string.decode("latin-1"), models or request.get_json()],
        sort_keys=True,
        separators=(",", ":"),
        default=lambda number: {"decimal": str(number)},
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _is_model(value) -> bool:
    return callable(getattr(value, "model_dump", None))


def run_once(store: IdempotencyStore, key: str, signature: str, call: Callable) -> Response:
    """Run `call` as the one request of `key`, or replay (or wait for) its answer."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        try:
            entry, owner = store.claim(key, signature)
        except KeyReused:
            raise Problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                f"{HEADER}: this key was first used for another request (method, path or body differ); "
                "use a new key for a new request",
            ) from None
        if owner:
            return _run_as_owner(store, key, entry, call)
        if not entry.done.wait(max(0.0, deadline - time.monotonic())):
            raise Problem(
                409,
                "idempotency-key-in-flight",
                "Request in flight",
                f"{HEADER}: a request with this key is still running after {WAIT_TIMEOUT:g} s; retry later",
                headers={"Retry-After": "1"},
            )
        if entry.answer is not None:
            return entry.answer.replay()
        # The first run failed and was forgotten: run again (or wait for whoever does).


def _run_as_owner(store: IdempotencyStore, key: str, entry: Entry, call: Callable) -> Response:
    try:
        response = current_app.make_response(call())
    except BaseException:
        store.complete(key, entry, None)
        raise
    store.complete(key, entry, Answer.of(response) if 200 <= response.status_code < 300 else None)
    return response


def documented_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every idempotent view, for the document."""
    found = set()
    for rule in app.url_map.iter_rules():
        if getattr(app.view_functions.get(rule.endpoint), "__idempotent__", False):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            found |= {(path, method.lower()) for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    return found


def document(operation: dict) -> None:
    """The header in, the replay marker out."""
    operation.setdefault("parameters", []).append(
        {
            "name": HEADER,
            "in": "header",
            "required": False,
            "description": "retries with the same key and request answer the first answer and apply nothing again; "
            "one header, one key: a comma (two headers joined, or a list) is a 400",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": r"^[^,]*[^\s,][^,]*$"},
        }
    )
    for status, response in operation.get("responses", {}).items():
        if status.startswith("2"):
            response.setdefault("headers", {})[REPLAYED_HEADER] = {
                "description": "present (true) when this is the remembered answer of an earlier request",
                "schema": {"type": "string", "enum": ["true"]},
            }
