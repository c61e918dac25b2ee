"""Settings that every worker of a fleet shares, in one database row, read by each request that needs them.

How a `PATCH /admin/config` answered by one worker reaches the others: it
does not travel at all. A request that needs the shared settings asks the
database for their version (one short `SELECT`, `sql.READ_SETTINGS`) and
builds a new `Config` only when the version moved. A change committed
before the answer to the PATCH went out is therefore in force for every
request, on every worker and machine, that starts after it: the contract,
with no window.

A deposit under `atomic-update` or `row-lock` saves even that round trip:
its statement checks the version itself (`provisional`, `adopt`; see
`bank.SettingsCheck`). It runs under the settings this worker read last,
`WHERE` their version is still that one, and returns the version it
found; when another worker's PATCH moved it, the statement changed
nothing, and the deposit runs again under the new settings. The
statement's snapshot is taken after the request started, so the contract
holds as with the read. What the web layer checks before any view (the
host, the admin token) is this process's own and never PATCHed, so it
takes the settings without a round trip (`cached`).

`LISTEN/NOTIFY` would save the round trip too, but a notification reaches
another worker some time after the commit, and a request that starts on
that worker in between would still run under the old settings. It would
also need a connection per worker set aside to listen, and a fallback when
that connection drops.

A request reads them once: asked again (the bank asks as it dispatches,
a view may ask too), it gets what it read first, kept for the request
(`CALLER`, a new object for each request, says which request a thread
serves). A request runs under one version of the settings from its first
read to its end.

What is this process's own (its threads, workers, address, store, the
database URL and admin token) is never written to the database: each
process keeps its own, and the shared rest comes from the row.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from ..lab.forensics import CALLER, NOBODY
from ..lab.store import StoreUnavailable
from ..settings import Config, apply_patch, check_patch, describe
from . import sql
from .database import Database, one, worker_name


class DatabaseSettings:
    """The settings in force, from the database: what `ConfigHolder` is for one process."""

    def __init__(self, db: Database, config: Config):
        self.db = db
        self._process = config.process()
        self._cached: tuple[int, Config] = (0, config)  # version 0 is never in the database
        self._keeping = threading.Lock()  # `_keep`: the newest version kept and applied, whichever thread finds it
        self._request = threading.local()  # (the request's Caller, the settings it read at its start)

    @property
    def current(self) -> Config:
        """The settings a request starting now runs under (one round trip; a new `Config` only after a change).

        Asked again by the same request, the settings it read first, without a round trip."""
        caller = CALLER.get()
        if caller is not NOBODY:
            held = getattr(self._request, "held", None)
            if held is not None and held[0] is caller:
                return held[1]
        config = self._read()
        if caller is not NOBODY:
            self._request.held = (caller, config)
        return config

    def _read(self) -> Config:
        version, config = self._cached
        with self.db.connection() as conn:
            row = conn.execute(sql.READ_SETTINGS, (version,)).fetchone()
        if row is None:
            raise StoreUnavailable(
                f"the database at {self.db.public_url} has no bankapp settings; start `bankapp serve --store "
                "postgres` once to create them",
                store="postgres",
            )
        latest, body = row
        if latest == version:
            return config
        config = self._build(body)
        self._keep(latest, config)
        return config

    def _keep(self, latest: int, config: Config) -> None:
        """Keep `config` (version `latest`) as the worker's, and apply it to the interpreter, if it is the newest
        this worker has seen.

        Threads of one worker find versions in their own snapshots and come
        back in any order: a read or a deposit's statement that began before
        a PATCH committed may return after one that began after it. Kept and
        applied unconditionally, the older version would win: the worker's
        cache one PATCH behind (its deposits' checks miss, and run again), and
        the switch interval, which is the whole process's, left at the older
        value for every later request, none of which sees a version change
        that would apply it again."""
        with self._keeping:
            if latest <= self._cached[0]:
                return
            self._cached = (latest, config)
            config.apply_to_interpreter()  # a switch interval another worker set is this process's too

    @property
    def cached(self) -> Config:
        """The settings this worker read last, without a round trip: exact for what only changes with a restart
        (which accounts exist, this process's own settings); the shared rest may be a PATCH behind."""
        return self._cached[1]

    @property
    def of_request(self) -> Config:
        """The settings the current request runs under if it read them, else `cached`; never a round trip.

        What the latency histogram labels a request with, once it has run."""
        held = getattr(self._request, "held", None)
        if held is not None and held[0] is CALLER.get() and held[0] is not NOBODY:
            return held[1]
        return self._cached[1]

    def provisional(self) -> tuple[int | None, Config]:
        """(version, settings) a statement may check instead of reading them first.

        Within a request that has read its settings, (None, them): nothing to
        check. Otherwise the version and settings this worker read last: a
        statement that does the work only `WHERE` the settings' version is
        still this one, and returns the version it found (`adopt`), reads
        them in the same round trip as the work. Its snapshot is taken after
        the request started, so a PATCH answered before that is seen, as by
        `current`.
        """
        caller = CALLER.get()
        if caller is not NOBODY:
            held = getattr(self._request, "held", None)
            if held is not None and held[0] is caller:
                return None, held[1]
        return self._cached

    def adopt(self, checked: tuple[int, Config], latest: int, body: dict[str, Any] | None) -> Config:
        """What a statement read of the settings while it checked version `checked` (see `provisional`).

        `latest` is the version it found and `body` the settings when they
        were not `checked`'s. The settings this request runs under from now
        on: `checked`'s when they were still in force (the statement did its
        work), else the new ones (it changed nothing: run the work again).
        """
        version, config = checked
        if latest != version:
            if body is None:
                raise AssertionError("a statement that found newer settings returns their body")
            config = self._build(body)
            self._keep(latest, config)
        if CALLER.get() is not NOBODY:
            self._request.held = (CALLER.get(), config)
        return config

    def _build(self, body: dict[str, Any]) -> Config:
        try:
            return Config.model_validate({**body, **self._process})
        except ValidationError as error:  # written by a process with other threads, say: refuse, do not guess
            raise StoreUnavailable(
                f"the settings in the database do not fit this worker: {describe(error)}",
                slug="settings-do-not-fit",
                title="Settings do not fit this worker",
            ) from None

    def patch(self, changes: Any) -> Config:
        """Apply a partial change for the whole fleet: validated here, written in one transaction.

        The row is locked while it is merged, so two PATCHes at once (on two
        workers) apply one after the other, and neither erases the other.
        """
        changes = check_patch(changes)
        with self.db.transaction() as conn:
            _, body = one(conn.execute(sql.LOCK_SETTINGS))
            config = apply_patch(self._build(body), changes)
            latest = one(conn.execute(sql.WRITE_SETTINGS, (Jsonb(config.shared()), worker_name())))[0]
        self._keep(latest, config)
        if CALLER.get() is not NOBODY:
            self._request.held = (CALLER.get(), config)  # the rest of this request runs under what it wrote
        return config


class SettingsMoved(Exception):
    """A statement found settings newer than those it checked: it changed nothing; `config` is the new ones."""

    def __init__(self, config: Config):
        super().__init__("the settings moved")
        self.config = config


class SettingsCheck(NamedTuple):
    """The settings an operation runs under without having read them: its statement checks their version
    (`DatabaseSettings.provisional`; the bank's `_dispatch` makes one, a database guard's statement uses it)."""

    holder: DatabaseSettings
    version: int
    config: Config

    def found(self, latest: int, body: dict[str, Any] | None) -> None:
        """What the statement read of the settings: adopted for the request; `SettingsMoved` if they moved."""
        CHECKING.settings = None  # checked once: the operation's later statements need not
        config = self.holder.adopt((self.version, self.config), latest, body)
        if latest != self.version:
            raise SettingsMoved(config)

    def read(self, conn: Connection) -> None:
        """The settings read by a statement of their own, when the checking statement could not tell."""
        row = conn.execute(sql.READ_SETTINGS, (self.version,)).fetchone()
        if row is None:
            raise StoreUnavailable("the database has no bankapp settings", store="postgres")
        self.found(*row)


#: `settings`: the `SettingsCheck` of the operation this thread runs (`DatabaseBank._dispatch`), or None.
CHECKING = threading.local()


def checking() -> SettingsCheck | None:
    return getattr(CHECKING, "settings", None)
