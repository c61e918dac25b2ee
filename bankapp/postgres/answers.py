"""`Idempotency-Key` answers that the whole fleet remembers, in the database.

In memory, a key's answer lives in the worker that ran the request: a retry
that the kernel hands to another worker (or that a load balancer sends to
another machine) is not recognised there, and applies the deposit twice.
On the postgres store the key is claimed in `bankapp_idempotency`, so
whichever worker a retry reaches, exactly one request of a key runs:

- `claim` inserts the key with the request's fingerprint; the primary key
  lets one insert win (`ON CONFLICT DO NOTHING`), as a unique index does
  for any "first one wins" race. The winner runs the request;
- the others read the row: another fingerprint is a client bug (422); a row
  with an answer is replayed; a row without one is still running, and they
  poll it (`peek`) until its answer is written, or until the row is gone
  (the run failed: they claim again);
- `complete` writes the answer (status, body, headers), or deletes the row
  when the request was refused (only a 2xx is remembered, as in memory).

The claim and the answer are two statements, each committed alone, around
the request's own transaction: a worker that dies between the operation's
commit and its answer leaves the key claimed without an answer, and its
retries answer 409 (still running) until the row expires, rather than
applying again. A `complete` the database misses (it is away) is tried
again by the worker until it is back (`bankapp.web.idempotency.SharedStore`).
A key expires `ttl` seconds after its first use.

The answers store keeps its statements here, each with what it prevents.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from .database import Database, worker_name

#: The first request of a key claims it; a second insert of the same key finds the row and does nothing.
#: A row past its lifetime is taken over by the insert, so the key can be used anew: in the same statement
#: (a DELETE in a WITH would run after the insert, which would find the old row). Of two claims of an
#: expired row at once, the second waits for the first's update and finds the row alive: one wins.
CLAIM = """
INSERT INTO bankapp_idempotency (key, fingerprint, claimed_by) VALUES (%(key)s, %(fingerprint)s, %(worker)s)
ON CONFLICT (key) DO UPDATE
    SET fingerprint = excluded.fingerprint, claimed_by = excluded.claimed_by, created_at = now(),
        status = NULL, body = NULL, headers = NULL
    WHERE bankapp_idempotency.created_at < now() - %(ttl)s * interval '1 second'
RETURNING key"""
#: What a retry sees of a key: committed rows only, so a running first request shows no answer yet.
PEEK = "SELECT fingerprint, status, body, headers FROM bankapp_idempotency WHERE key = %s"
#: The first request's answer, written once it is known.
ANSWER = "UPDATE bankapp_idempotency SET status = %s, body = %s, headers = %s WHERE key = %s"
#: A refused first request is forgotten: its retry runs again.
FORGET = "DELETE FROM bankapp_idempotency WHERE key = %s"
#: Keys past their lifetime, now and then.
SWEEP = "DELETE FROM bankapp_idempotency WHERE created_at < now() - %s * interval '1 second'"
#: Every how many claims a worker sweeps the expired keys.
SWEEP_EVERY = 1000


@dataclass(frozen=True)
class Seen:
    """A key's row as a retry reads it: its fingerprint, and the answer once there is one."""

    fingerprint: str
    answer: tuple[int, bytes, list[tuple[str, str]]] | None


class SharedAnswers:
    """Claim, read, answer and forget keys in the database shared by the fleet."""

    def __init__(self, db: Database):
        self.db = db
        self._claims = itertools.count(1)

    def claim(self, key: str, fingerprint: str, ttl: float) -> bool:
        """Whether this request won the key (and so runs); else `peek` says what the winner left.
        A key lives `ttl` seconds from its first use."""
        with self.db.connection() as conn:
            if next(self._claims) % SWEEP_EVERY == 0:
                conn.execute(SWEEP, (ttl,))
            won = conn.execute(
                CLAIM, {"key": key, "fingerprint": fingerprint, "worker": worker_name(), "ttl": ttl}
            ).fetchone()
        return won is not None

    def peek(self, key: str) -> Seen | None:
        """The key's row, or None when there is none (never claimed, expired, or its run failed)."""
        with self.db.connection() as conn:
            row = conn.execute(PEEK, (key,)).fetchone()
        if row is None:
            return None
        fingerprint, status, body, headers = row
        answer = None if status is None else (status, bytes(body), [tuple(pair) for pair in headers])
        return Seen(fingerprint, answer)

    def complete(self, key: str, answer: tuple[int, bytes, list[tuple[str, str]]] | None) -> None:
        """Remember the answer of the key's request, or with None forget the key."""
        with self.db.connection() as conn:
            if answer is None:
                conn.execute(FORGET, (key,))
            else:
                status, body, headers = answer
                conn.execute(ANSWER, (status, body, Jsonb([list(pair) for pair in headers]), key))
