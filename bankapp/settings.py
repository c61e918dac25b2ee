"""One place that knows every setting: its type, default, range and help.

`Config` is a pydantic model, so the same definition checks a flag, a
`BANKAPP_*` variable and a `PATCH /admin/config` body, and names the setting
in every refusal. A `Config` is immutable: a change makes a new one and swaps
it in whole, so a request that read the config at its start keeps a
consistent view even if a PATCH lands while it runs.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

GuardName = Literal["unsafe", "lock", "rlock", "semaphore"]
TransferPolicyName = Literal["unsafe", "naive", "ordered", "release-first", "backoff"]

ENV_PREFIX = "BANKAPP_"

#: Settings that shape the process (gunicorn, the size of the bank); they are
#: fixed at start and refused by PATCH.
STARTUP_ONLY = frozenset({"accounts", "initial_balance", "threads", "workers", "host", "port", "store", "log_level"})

#: Threads kept free for `/healthz`, `/stats` and the admin routes, whatever
#: the checkouts take.
RESERVED_THREADS = 2


class Config(BaseModel):
    """The settings in force. Field descriptions are the `--help` text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deposit_guard: GuardName = Field("unsafe", description="guard of deposits: unsafe, lock, rlock, semaphore")
    deposit_permits: int = Field(
        1, ge=1, le=1024, description="permits of each account's semaphore when deposit_guard is semaphore"
    )
    checkout_guard: GuardName = Field("unsafe", description="guard of checkouts: unsafe, lock, rlock, semaphore")
    capacity: int = Field(8, ge=1, le=1024, description="checkouts admitted at once with checkout_guard semaphore")
    admission_timeout_ms: float = Field(
        0, ge=0, le=60_000, description="how long a checkout may wait for a permit; 0 rejects at once"
    )
    max_waiting: int = Field(8, ge=0, le=1024, description="checkouts allowed to wait at once; more are rejected")
    transfer_policy: TransferPolicyName = Field(
        "naive", description="transfer lock policy: unsafe, naive, ordered, release-first, backoff"
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
    gateway_capacity: int = Field(8, ge=1, le=1024, description="checkouts the gateway serves at full speed")
    accounts: int = Field(16, ge=1, le=1000, description="number of accounts, acc-00 ..")
    initial_balance: int = Field(100_000, ge=0, le=10**12, description="starting balance of each account, in cents")
    threads: int = Field(32, ge=4, le=1024, description="gunicorn threads per worker")
    workers: int = Field(1, ge=1, le=64, description="gunicorn worker processes (the memory store allows 1)")
    host: str = Field("127.0.0.1", min_length=1, description="address to bind")
    port: int = Field(8000, ge=0, le=65535, description="port to bind (0 picks a free one)")
    store: Literal["memory"] = Field("memory", description="where balances live")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="gunicorn's log level; debug adds the worker's full counters when it stops"
    )
    admin_token: str | None = Field(None, description="bearer token required by /admin/* (see Security)")

    @field_validator("lock_timeout_ms", mode="before")
    @classmethod
    def _none_means_forever(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"none", "forever"}:
            return None
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_combinations(self) -> Config:
        if self.store == "memory" and self.workers > 1:
            raise ValueError(
                f"workers: {self.workers} workers cannot share the memory store: each process would have its "
                "own bank and its own locks, so no guard could protect anything across them; use workers 1"
            )
        limit = self.admission_limit()
        if limit is not None and limit + self.max_waiting > self.threads - RESERVED_THREADS:
            names = "capacity + max_waiting" if self.checkout_guard == "semaphore" else "max_waiting"
            raise ValueError(
                f"{names}: {limit} + {self.max_waiting} checkouts (in flight under checkout_guard "
                f"{self.checkout_guard}, plus waiting) could take {limit + self.max_waiting} of the {self.threads} "
                f"server threads, leaving fewer than {RESERVED_THREADS} for /healthz and the admin routes; "
                f"lower {' or '.join(names.split(' + '))}, or raise threads"
            )
        return self

    def admission_limit(self) -> int | None:
        """Checkouts the checkout guard lets run at once: `capacity` under
        `semaphore`, 1 under `lock` and `rlock`, no limit (None) under `unsafe`.

        With a limit, at most `limit + max_waiting` checkouts hold a server
        thread, which the check above keeps below `threads`. Without one, the
        shop itself turns away a checkout that would leave fewer than
        `RESERVED_THREADS` threads free (see `bankapp.admission`).
        """
        return {"semaphore": self.capacity, "lock": 1, "rlock": 1}.get(self.checkout_guard)

    @property
    def account_ids(self) -> list[str]:
        width = max(2, len(str(self.accounts - 1)))
        return [f"acc-{i:0{width}d}" for i in range(self.accounts)]

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
        """The settings as `GET /admin/config` shows them (never the token)."""
        data = self.model_dump()
        data["lock_timeout_ms"] = "none" if self.lock_timeout_ms is None else self.lock_timeout_ms
        data["admin_token"] = "set" if self.admin_token else None
        data["guard"] = self.deposit_guard if self.deposit_guard == self.checkout_guard else None
        return data


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
    """`guard` is shorthand for both `deposit_guard` and `checkout_guard`."""
    values = dict(values)
    guard = values.pop("guard", None)
    if guard is not None and guard not in get_args(GuardName):
        known = ", ".join(repr(name) for name in get_args(GuardName))
        raise SettingsError(
            f"guard: Input should be {known}",
            [{"setting": "guard", "message": f"Input should be {known}", "type": "literal_error"}],
        )
    if guard is not None:
        values.setdefault("deposit_guard", guard)
        values.setdefault("checkout_guard", guard)
    return values


def from_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
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
        self._listeners: list = []
        config.apply_to_interpreter()

    @property
    def current(self) -> Config:
        return self._config

    def on_change(self, listener) -> None:
        """Call `listener(old, new)` after every accepted change."""
        self._listeners.append(listener)

    def patch(self, changes: dict[str, Any]) -> Config:
        """Apply a partial change from JSON; types are checked strictly."""
        if not isinstance(changes, dict):
            raise SettingsError("the body must be a JSON object of settings")
        changes = expand_guard(changes)
        fixed = sorted(STARTUP_ONLY & changes.keys())
        if fixed:
            raise SettingsError(
                f"{', '.join(fixed)}: can only be set at start (flag or BANKAPP_ variable), not at runtime",
                [{"setting": name, "message": "can only be set at start", "type": "startup_only"} for name in fixed],
            )
        if "admin_token" in changes:
            raise SettingsError(
                "admin_token: can only be set at start",
                [{"setting": "admin_token", "message": "can only be set at start", "type": "startup_only"}],
            )
        with self._lock:
            old = self._config
            merged = old.model_dump() | changes
            try:
                new = Config.model_validate(merged, strict=True)
            except ValidationError as error:
                raise describe(error) from None
            self._config = new
            new.apply_to_interpreter()
        for listener in self._listeners:
            listener(old, new)
        return new
