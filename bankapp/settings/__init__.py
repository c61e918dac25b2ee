"""One place that knows every setting: its type, default, range and help.

`Config` is a pydantic model, so the same definition checks a flag, a
`BANKAPP_*` variable and a `PATCH /admin/config` body, and names the setting
in every refusal. A `Config` is immutable: a change makes a new one and swaps
it in whole, so a request that read the config at its start keeps a
consistent view even if a PATCH lands while it runs.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .values import LARGEST_WHOLE_NUMBER as LARGEST_WHOLE_NUMBER
from .values import WholeNumber, hide_password
from .values import whole_number as whole_number

#: Guards both deposits and checkouts know: what `guard` may set.
GuardName = Literal["unsafe", "lock", "rlock", "semaphore", "advisory-lock"]
DepositGuardName = Literal[
    "unsafe", "lock", "rlock", "semaphore", "row-lock", "advisory-lock", "atomic-update", "serializable", "exercise"
]
CheckoutGuardName = Literal[
    "unsafe", "lock", "rlock", "semaphore", "adaptive", "advisory-lock", "advisory-semaphore", "exercise"
]
TransferPolicyName = Literal["unsafe", "naive", "ordered", "release-first", "backoff", "exercise"]
StoreName = Literal["memory", "postgres"]

#: Guards that are the database's own tools: only the postgres store has them.
DATABASE_GUARDS = frozenset({"row-lock", "advisory-lock", "atomic-update", "serializable", "advisory-semaphore"})
#: Checkout guards that admit `capacity` at once (`adaptive`: to start with; the rest admit one, or all).
SEMAPHORE_GUARDS = frozenset({"semaphore", "advisory-semaphore", "adaptive", "exercise"})
#: The value of deposit_guard, checkout_guard and transfer_policy that runs a trainee's code, plugged in at start
#: by `bankapp serve --exercise NAME=FILE` (`bankapp.lab.plugged`); refused by the lab when nothing was.
EXERCISE = "exercise"

ENV_PREFIX = "BANKAPP_"
#: The checkout guard whose limit is found at run time (`bankapp.lab.admission.adaptive`); no deposit guard.
ADAPTIVE = "adaptive"

#: Settings that shape the process (gunicorn, the size of the bank); they are
#: fixed at start and refused by PATCH.
STARTUP_ONLY = frozenset(
    {
        "accounts",
        "initial_balance",
        "threads",
        "workers",
        "host",
        "port",
        "allowed_hosts",
        "store",
        "database_url",
        "log_level",
    }
)
#: Settings of one process, never shared through a database: how it runs and where it finds the rest.
PROCESS_ONLY = frozenset(
    {"threads", "workers", "host", "port", "allowed_hosts", "store", "database_url", "admin_token", "log_level"}
)

#: Threads kept free for `/healthz`, `/stats`, `/debug/locks` and the admin
#: routes, whatever the requests that wait on locks take (see `lab.Gate`).
RESERVED_THREADS = 2


class Config(BaseModel):
    """The settings in force. Field descriptions are the `--help` text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deposit_guard: DepositGuardName = Field(
        "unsafe",
        description="guard of deposits: unsafe, lock, rlock, semaphore; with the postgres store also row-lock, "
        "advisory-lock, atomic-update, serializable; exercise: a trainee's guard (bankapp serve --exercise)",
    )
    deposit_permits: WholeNumber = Field(
        1, ge=1, le=1024, description="permits of each account's semaphore when deposit_guard is semaphore"
    )
    checkout_guard: CheckoutGuardName = Field(
        "unsafe",
        description="guard of checkouts: unsafe, lock, rlock, semaphore; with the postgres store also "
        "advisory-lock, advisory-semaphore; exercise: a trainee's semaphore or admission (bankapp serve --exercise)",
    )
    capacity: WholeNumber = Field(
        8, ge=1, le=1024, description="checkouts admitted at once with checkout_guard semaphore or advisory-semaphore"
    )
    admission_timeout_ms: float = Field(
        0, ge=0, le=60_000, description="how long a checkout may wait for a permit; 0 rejects at once"
    )
    max_waiting: WholeNumber = Field(
        8, ge=0, le=1024, description="checkouts allowed to wait at once; more are rejected"
    )
    transfer_policy: TransferPolicyName = Field(
        "naive",
        description="transfer lock policy: unsafe, naive, ordered, release-first, backoff; exercise: a trainee's "
        "lock_order (bankapp serve --exercise)",
    )
    race_window_ms: float = Field(
        1.0, ge=0, le=10_000, description="sleep between the read and the write of every read-modify-write"
    )
    lock_timeout_ms: float | None = Field(
        2000, ge=0, le=3_600_000, description="bound on every guard acquire, in ms; 'none' waits forever"
    )
    deadlock_check_ms: float = Field(
        50, ge=1, le=60_000, description="a lock wait longer than this checks the wait-for graph for a cycle"
    )
    switch_interval_us: float = Field(
        5000,
        ge=1,
        le=1_000_000,
        description="CPython's thread switch interval (sys.setswitchinterval), in microseconds; lower it to see "
        "races with race_window_ms 0",
    )
    service_time_ms: float = Field(
        50, ge=0, le=60_000, description="the payment gateway's time per checkout when not overloaded"
    )
    gateway_capacity: WholeNumber = Field(8, ge=1, le=1024, description="checkouts the gateway serves at full speed")
    accounts: WholeNumber = Field(16, ge=1, le=1000, description="number of accounts, acc-00 ..")
    initial_balance: WholeNumber = Field(
        100_000, ge=0, le=10**12, description="starting balance of each account, in cents"
    )
    threads: WholeNumber = Field(32, ge=4, le=1024, description="gunicorn threads per worker")
    workers: WholeNumber = Field(1, ge=1, le=64, description="gunicorn worker processes (the memory store allows 1)")
    host: str = Field("127.0.0.1", min_length=1, description="address to bind")
    port: WholeNumber = Field(8000, ge=0, le=65535, description="port to bind (0 picks a free one)")
    allowed_hosts: str = Field(
        "",
        description="host names the server also answers to, comma-separated (a room's own name, a proxy's "
        "upstream name); loopback names, IP addresses and the bound host always; * answers any",
    )
    store: StoreName = Field(
        "memory", description="where balances live: memory (one process) or postgres (every worker and machine)"
    )
    database_url: str | None = Field(
        None, description="libpq URL of the PostgreSQL database, required with store postgres"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="gunicorn's log level; debug adds the worker's full counters when it stops"
    )
    admin_token: str | None = Field(None, description="bearer token required by /admin/* (see Security)")

    @field_validator("deposit_guard", mode="before")
    @classmethod
    def _adaptive_admits_checkouts_only(cls, value: Any) -> Any:
        if value == ADAPTIVE:
            raise ValueError(
                "adaptive is a checkout guard only: it limits how many checkouts run at once, from their latency, "
                "and excludes nothing, so it cannot keep a deposit's read-modify-write whole; pick unsafe, lock, "
                "rlock or semaphore for deposits"
            )
        return value

    @field_validator("lock_timeout_ms", mode="before")
    @classmethod
    def _none_means_forever(cls, value: Any) -> Any:
        return None if value == "none" else value

    @field_validator("admin_token", "database_url", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_combinations(self) -> Config:
        if self.store == "memory" and self.workers > 1:
            raise ValueError(
                f"workers: {self.workers} workers cannot share the memory store: each process would have its "
                "own bank and its own locks, so no guard could protect anything across them; use workers 1, "
                "or the postgres store (--store postgres --database-url URL), which every worker shares"
            )
        if self.store == "postgres" and not self.database_url:
            raise ValueError(
                "database_url: the postgres store needs the database's libpq URL, e.g. "
                "--database-url postgresql://bank@127.0.0.1:5432/bankapp (or BANKAPP_DATABASE_URL)"
            )
        for name in ("deposit_guard", "checkout_guard", "transfer_policy"):
            if self.store == "postgres" and getattr(self, name) == EXERCISE:
                raise ValueError(
                    f"{name}: exercise runs a trainee's code in one process, and the postgres store's workers "
                    "share the database: plug a trainee's file into the memory store"
                )
        for name in ("deposit_guard", "checkout_guard"):
            guard = getattr(self, name)
            if self.store == "memory" and guard in DATABASE_GUARDS:
                raise ValueError(
                    f"{name}: {guard} is one of the database's own tools and the memory store has no database; "
                    "start with --store postgres --database-url URL, or pick unsafe, lock, rlock or semaphore"
                )
        limit = self.admission_limit()
        if limit is not None and limit + self.max_waiting > self.threads - RESERVED_THREADS:
            names = "capacity + max_waiting" if self.checkout_guard in SEMAPHORE_GUARDS else "max_waiting"
            raise ValueError(
                f"{names}: {limit} + {self.max_waiting} checkouts (in flight under checkout_guard "
                f"{self.checkout_guard}, plus waiting) could take {limit + self.max_waiting} of the {self.threads} "
                f"server threads, leaving fewer than {RESERVED_THREADS} for /healthz and the admin routes; "
                f"lower {' or '.join(names.split(' + '))}, or raise threads"
            )
        return self

    def admission_limit(self) -> int | None:
        """Checkouts the checkout guard lets run at once: `capacity` under
        `semaphore` and `advisory-semaphore`, 1 under `lock`, `rlock` and
        `advisory-lock`, no limit (None) under `unsafe`. (Under the in-process
        guards with several workers that is per worker.)

        With a limit, at most `limit + max_waiting` checkouts hold a server
        thread, which the check above keeps below `threads`. Without one, the
        lab's door turns away a checkout that would leave fewer than
        `RESERVED_THREADS` threads free (see `bankapp.lab.admission`).
        """
        if self.checkout_guard in SEMAPHORE_GUARDS:
            return self.capacity
        return {"lock": 1, "rlock": 1, "advisory-lock": 1}.get(self.checkout_guard)

    def admission_timeout(self) -> float | None:
        """How long a checkout may wait for admission, in seconds: `admission_timeout_ms`
        for a semaphore, `lock_timeout_ms` for a lock (None: forever)."""
        if self.checkout_guard in SEMAPHORE_GUARDS:
            return self.admission_timeout_ms / 1000
        return self.lock_timeout()

    @property
    def account_ids(self) -> tuple[str, ...]:
        return account_ids(self.accounts)

    def lock_timeout(self) -> float | None:
        """`lock_timeout_ms` in seconds, or None for 'wait forever'."""
        return None if self.lock_timeout_ms is None else self.lock_timeout_ms / 1000

    def apply_to_interpreter(self) -> None:
        """Set CPython's switch interval to `switch_interval_us`, for the whole process.

        Only one thread runs Python code at a time (the GIL). A thread that
        wants it asks; the running thread lets go at its next blocking call
        (a sleep, a socket read) or, if it has none, once the switch interval
        has passed: 5 ms by default. A deposit's read-modify-write with no
        race window blocks nowhere and lasts well under a microsecond, so a
        switch almost never lands between its read and its write, and the
        race, always there, is almost never seen. With an interval of a few
        microseconds, switches land anywhere, that gap included.
        """
        if sys.getswitchinterval() != self.switch_interval_us / 1_000_000:
            sys.setswitchinterval(self.switch_interval_us / 1_000_000)

    def public(self) -> dict[str, Any]:
        """The settings as `GET /admin/config` shows them (never the token, nor the database's password)."""
        data = self.model_dump()
        data["lock_timeout_ms"] = "none" if self.lock_timeout_ms is None else self.lock_timeout_ms
        data["admin_token"] = "set" if self.admin_token else None
        data["database_url"] = hide_password(self.database_url)
        data["guard"] = self.deposit_guard if self.deposit_guard == self.checkout_guard else None
        return data

    def shared(self) -> dict[str, Any]:
        """What every process of a fleet shares (the postgres store keeps it in the database)."""
        return self.model_dump(exclude=set(PROCESS_ONLY))

    def process(self) -> dict[str, Any]:
        """What is this process's own: how it runs, and where it finds the shared rest."""
        return self.model_dump(include=set(PROCESS_ONLY))


@functools.cache
def account_ids(accounts: int) -> tuple[str, ...]:
    """acc-00 .. for `accounts` accounts: made once per count (every deposit asks whether its account exists)."""
    width = max(2, len(str(accounts - 1)))
    return tuple(f"acc-{i:0{width}d}" for i in range(accounts))


class SettingsError(ValueError):
    """A refused setting; `str()` names the setting and the rule."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.errors = errors or []


def describe(error: ValidationError) -> SettingsError:
    """Turn pydantic's errors into one message that names each setting."""
    parts, errors = [], []
    for item in error.errors(include_url=False):
        name = ".".join(str(p) for p in item["loc"]) or None
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        parts.append(f"{name}: {message}" if name and not message.startswith(f"{name}:") else message)
        errors.append({"setting": name, "message": message, "type": item["type"]})
    return SettingsError("; ".join(parts), errors)


def expand_guard(values: dict[str, Any]) -> dict[str, Any]:
    """`guard` is shorthand for both `deposit_guard` and `checkout_guard` (`adaptive`: the checkout's alone)."""
    values = dict(values)
    if "guard" not in values:
        return values
    guard = values.pop("guard")
    if guard == ADAPTIVE:  # a checkout guard only: it sets the checkout's guard alone
        values.setdefault("checkout_guard", guard)
        return values
    if guard not in get_args(GuardName):  # null too: the document allows guard names only
        known = ", ".join(repr(name) for name in get_args(GuardName))
        message = f"Input should be {known} (a guard both deposits and checkouts have)"
        raise SettingsError(f"guard: {message}", [{"setting": "guard", "message": message, "type": "literal_error"}])
    values.setdefault("deposit_guard", guard)
    values.setdefault("checkout_guard", guard)
    return values


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `BANKAPP_*` variables that name a setting, by setting name."""
    environ = os.environ if environ is None else environ
    names = set(Config.model_fields) | {"guard"}
    found = {}
    for key, value in environ.items():
        if not value.strip():
            continue  # an empty variable is an unset one, not "" (which would mean something else)
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() in names:
            found[key[len(ENV_PREFIX) :].lower()] = value
    return found


def load(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Defaults, then `BANKAPP_*` variables, then `overrides` (flags win)."""
    values = expand_guard(from_environment(environ))
    for key, value in expand_guard(overrides or {}).items():
        values[key] = value
    try:
        return Config.model_validate(values)
    except ValidationError as error:
        raise describe(error) from None


class ConfigHolder:
    """The current `Config`, swapped whole under a lock on every change."""

    def __init__(self, config: Config):
        self._config = config
        self._lock = threading.Lock()
        config.apply_to_interpreter()

    @property
    def current(self) -> Config:
        return self._config

    cached = current  # in one process the settings in force cost no round trip: the same
    of_request = current

    def patch(self, changes: dict[str, Any]) -> Config:
        """Apply a partial change from JSON; types are checked strictly."""
        changes = check_patch(changes)
        with self._lock:
            self._config = apply_patch(self._config, changes)
            self._config.apply_to_interpreter()
            return self._config


def check_patch(changes: Any) -> dict[str, Any]:
    """A `PATCH /admin/config` body with `guard` expanded, or the refusal naming what cannot change at runtime."""
    if not isinstance(changes, dict):
        raise SettingsError("the body must be a JSON object of settings")
    expanded = expand_guard(changes)
    fixed = sorted((STARTUP_ONLY | {"admin_token"}) & expanded.keys())
    if fixed:
        raise SettingsError(
            f"{', '.join(fixed)}: can only be set at start (flag or BANKAPP_ variable), not at runtime",
            [{"setting": name, "message": "can only be set at start", "type": "startup_only"} for name in fixed],
        )
    return expanded


def apply_patch(config: Config, changes: dict[str, Any]) -> Config:
    """`config` with `changes` (checked by `check_patch`) applied, validated strictly as a whole."""
    try:
        return Config.model_validate(config.model_dump() | changes, strict=True)
    except ValidationError as error:
        raise describe(error) from None
