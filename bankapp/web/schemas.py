"""Request and response shapes: the one source of truth for validation.

flask-openapi3 validates every request against these models before a view
runs, and writes the OpenAPI document from them. Models are strict: `true`,
`1.5` and `"100"` are not amounts; `100.0` is (see `settings.whole_number`,
the one rule for integral numbers, which settings follow too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from ..interleave import SCENARIOS
from ..interleave.schedule import MAX_ENTRIES
from ..lab.forensics import RECENT
from ..settings import STARTUP_ONLY, Config, GuardName, whole_number

#: The largest amount one request may move: 1,000,000.00 in cents.
MAX_AMOUNT = 100_000_000
MAX_BATCH = 1000
#: The most units one checkout may ask for.
MAX_QUANTITY = 10_000


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


AmountCents = Annotated[
    int, Field(gt=0, le=MAX_AMOUNT, description="integer cents, 1 .. 100000000"), BeforeValidator(whole_number)
]


class AccountPath(BaseModel):
    account_id: str = Field(description="account id, acc-00 .. acc-15 by default")


class AmountIn(Strict):
    amount: AmountCents


class BatchIn(Strict):
    amounts: list[AmountCents] = Field(
        min_length=1, max_length=MAX_BATCH, description="amounts in integer cents, applied in order"
    )


class BalanceOut(BaseModel):
    id: str
    balance: int


class AccountsOut(BaseModel):
    accounts: list[BalanceOut]
    total: int


class CheckoutIn(Strict):
    sku: str = Field(min_length=1, max_length=64, description="a SKU of GET /catalog: widget or flash-sale")
    quantity: Annotated[
        int, Field(gt=0, le=MAX_QUANTITY, description="whole units, 1 .. 10000"), BeforeValidator(whole_number)
    ]


class CatalogItem(BaseModel):
    sku: str
    stock: int
    initial_stock: int


class CatalogOut(BaseModel):
    items: list[CatalogItem]


class OrderOut(BaseModel):
    order_id: str
    sku: str
    quantity: int
    remaining: int = Field(description="stock of the SKU this checkout left")
    guard: str
    wait_ms: float = Field(description="time spent waiting for admission")
    gateway_ms: float = Field(description="time the payment gateway took")
    latency_ms: float


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str


class TransferIn(Strict):
    """`from` is a Python keyword, so the field is `source` with the JSON name `from`."""

    source: str = Field(alias="from", min_length=1, max_length=64, description="account to debit")
    target: str = Field(alias="to", min_length=1, max_length=64, description="account to credit")
    amount: AmountCents


class TransferLegOut(BaseModel):
    id: str
    balance: int


class TransferOut(BaseModel):
    source: TransferLegOut = Field(alias="from")
    target: TransferLegOut = Field(alias="to")
    amount: int
    policy: str
    retries: int = Field(description="attempts given up and retried (policy backoff)")


class AuditOut(BaseModel):
    total: int
    expected_total: int
    difference: int
    negative_accounts: list[str]
    consistent: bool
    policy: str
    accounts: int


class HealthOut(BaseModel):
    status: Literal["ok"]
    store: Literal["memory", "postgres"] = Field(description="the store, which answered too")


class ThreadOut(BaseModel):
    name: str
    ident: int | None
    native_id: int | None
    daemon: bool
    alive: bool


class ThreadsOut(BaseModel):
    pid: int
    active_count: int
    current_thread: ThreadOut
    main_thread: ThreadOut
    threads: list[ThreadOut]


def _config_out() -> type[BaseModel]:
    """The settings as `Config.public()` shows them, field for field from `Config`."""
    fields: dict[str, Any] = {
        name: (info.annotation, Field(description=info.description)) for name, info in Config.model_fields.items()
    }
    fields["lock_timeout_ms"] = (float | Literal["none"], Field(description="in ms, or 'none': waits forever"))
    fields["admin_token"] = (
        Literal["set"] | None,
        Field(description="'set' when a token is required (never the token)"),
    )
    fields["guard"] = (GuardName | None, Field(description="the guard when deposit_guard and checkout_guard agree"))
    return create_model("ConfigOut", __config__=ConfigDict(extra="allow"), **fields)


def _omit_default(schema: dict[str, Any]) -> None:
    """In a PATCH, a missing setting stays as it is; it has no default."""
    schema.pop("default", None)


def _constrained(annotation: Any, metadata: list) -> Any:
    """`annotation` with the constraints (`ge`, `le`, ...) pydantic keeps as metadata."""
    return Annotated[(annotation, *metadata)] if metadata else annotation


def _config_patch() -> type[BaseModel]:
    """`Config` with every field optional, less the settings fixed at start.

    It documents `PATCH /admin/config`; `ConfigHolder.patch` still does the
    validating, so that a refusal names the setting (and "can only be set at
    start") exactly as at start-up.
    """
    fields: dict[str, Any] = {
        "guard": (
            GuardName,
            Field(None, description="sets deposit_guard and checkout_guard", json_schema_extra=_omit_default),
        )
    }
    for name, info in Config.model_fields.items():
        if name in STARTUP_ONLY or name == "admin_token":
            continue
        fields[name] = (
            _constrained(info.annotation, info.metadata),
            Field(None, description=info.description, json_schema_extra=_omit_default),
        )
    fields["lock_timeout_ms"] = (
        _constrained(float, Config.model_fields["lock_timeout_ms"].metadata) | Literal["none"] | None,
        Field(
            None,
            description="bound on every guard acquire, in ms; 'none' or null waits forever",
            json_schema_extra=_omit_default,
        ),
    )
    return create_model("ConfigPatch", __config__=ConfigDict(extra="forbid"), **fields)


if TYPE_CHECKING:  # made field for field from `Config` at import: to a type checker, a model
    ConfigOut = BaseModel
else:
    ConfigOut = _config_out()
ConfigPatch = _config_patch()


class StatsOut(BaseModel):
    """Counters by concern; each concern adds its own key."""

    model_config = ConfigDict(extra="allow")
    deposits: dict[str, Any]
    settings: ConfigOut
    served_by: dict[str, Any] = Field(description="threads of this worker that served requests lately")


class BreakOut(BaseModel):
    deadlocks_broken: list[dict[str, Any]] = Field(
        description="the deadlocks broken, as /debug/locks records them: cycle, victim, broken_by operator"
    )


class ResetOut(BreakOut):
    status: Literal["reset"]
    settings: ConfigOut


class InterleaveIn(Strict):
    """One replay: a scenario, the guard (or transfer policy) it runs under, and the order of its steps."""

    scenario: Literal[tuple(SCENARIOS)] = Field(  # type: ignore[valid-type]
        description="; ".join(f"{name}: {scenario.shows}" for name, scenario in SCENARIOS.items())
    )
    guard: str | None = Field(
        None,
        max_length=64,
        description="deposit, withdraw, batch, checkout: unsafe, lock, rlock, semaphore; transfer, audit: naive, "
        "ordered, release-first, unsafe. Default: the one in force",
    )
    schedule: str | None = Field(
        None,
        max_length=MAX_ENTRIES * 16,
        description='steps as THREAD.STEP in order, e.g. "a.read b.read a.write b.write"; threads a, b, c; steps '
        "read, write, acquire, release (acquires and releases may be left out). Default: the scenario's own",
    )


class InterleaveOut(BaseModel):
    """What each step did and saw, in the order it ran, and the end state; `bankapp interleave` prints it."""

    model_config = ConfigDict(extra="allow")
    scenario: str
    shows: str
    setting: Literal["deposit_guard", "transfer_policy", "checkout_guard"] = Field(
        description="the setting `guard` stood for"
    )
    guard: str
    schedule: str
    scratch: bool = Field(description="always true: the replay ran in a bank of its own; the server's is untouched")
    settings: dict[str, Any] = Field(description="the settings in force that shape a replay")
    threads: list[dict[str, Any]] = Field(description="each thread: what it does and its steps")
    events: list[dict[str, Any]] = Field(
        description="in order: a step released (`step`), what it did (`read`, `write`, `took`, `released`), "
        "waiting (`blocks`, naming the holders), giving up (`timed out`, `gave up`), `done`, `not run`"
    )
    ran: list[str] = Field(description="the named steps in the order they ran: the order the guard allowed")
    answers: list[dict[str, Any]] = Field(description="what each thread's request would have answered")
    final: dict[str, Any] = Field(description="balances written, deposit books, the bank's total, deadlocks")
    findings: list[str] = Field(description="what the end state shows, in sentences")


class DebugLocksOut(BaseModel):
    """The live wait-for graph: who holds and who waits for each account lock."""

    model_config = ConfigDict(extra="allow")
    policy: str
    locks: list[dict[str, Any]] = Field(description="locks held or waited for: holder and waiters")
    wait_for: list[dict[str, Any]] = Field(description="edges: waiter -> account -> holder")
    live_deadlocks: list[dict[str, Any]]
    deadlocks_detected: int
    recent_deadlocks: list[dict[str, Any]]


class RacesQuery(BaseModel):
    limit: int = Field(20, ge=1, le=RECENT, description=f"how many of the newest erasures to list, 1 .. {RECENT}")


class RaceWrite(BaseModel):
    """One write of a balance: what it read, what it wrote, and who wrote it (times in epoch seconds)."""

    request_id: str | None = Field(description="the X-Request-Id of its request")
    operation: str | None = Field(description="what the request did: deposit, withdrawal, batch deposit, transfer")
    thread: str
    pid: int
    account: str
    read_version: int
    read_balance: int
    delta: int = Field(description="what it added to the balance it read, in cents")
    version: int
    balance: int = Field(description="what it wrote")
    read_at: float
    wrote_at: float


class RaceOut(BaseModel):
    """A write over a newer version than it read, and the writes it erased (and revived)."""

    id: int
    account: str
    at: str
    cents: int = Field(description="what this erasure took from the balance: the head's balance minus the read one")
    complete: bool = Field(description="false when some writes in between are no longer remembered")
    eraser: RaceWrite
    overwrote: dict[str, int | None] = Field(description="the version it wrote over, and its balance")
    erased: list[RaceWrite] = Field(description="newest first: the writes it took away")
    revived: list[RaceWrite] = Field(description="writes an earlier erasure took away, back again")
    sentence: str


class DebugRacesOut(BaseModel):
    """Who erased whom: the newest erasures first, and totals of every one since the last reset."""

    store: Literal["memory", "postgres"]
    erasures: int
    writes_erased: int
    writes_revived: int
    lost_updates: int = Field(description="cents the erasures took, in all: equal to /stats lost_updates at rest")
    incomplete: int
    kept: int = Field(description="how many erasures are kept to list; the totals count them all")
    races: list[RaceOut]


class IsolationCell(BaseModel):
    """One case at one level: judged here, and Hermitage's published result beside it."""

    case: str = Field(description="G0, G1a, G1b, G1c, OTV, PMP, P4, G-single, G2-item, G2")
    level: Literal["read committed", "repeatable read", "serializable"]
    result: Literal["anomaly", "prevented"]
    how: Literal["blocked", "snapshot", "40001", "no conflict"] | None = Field(
        description="what prevented it: a lock wait, a read of the old version, a serialization failure"
    )
    hermitage: Literal["anomaly", "prevented"]
    hermitage_scripted: bool = Field(description="Hermitage's postgres.md scripts this case at this level")
    agrees: bool
    why: str = Field(description="what the sessions read, wrote or raised that decided the result")
    steps: list[str] = Field(description="each step as it ran, the isolation tester's way")


class IsolationOut(BaseModel):
    """The matrix; `agrees` when every cell matches Hermitage."""

    cases: list[IsolationCell]
    agrees: bool


class CustomerPath(BaseModel):
    customer_id: str = Field(description="customer id, cust-00 .. cust-07 by default: cust-N owns acc-2N and acc-2N+1")


class CustomerWithdrawIn(Strict):
    account: str = Field(min_length=1, max_length=64, description="one of the customer's two accounts")
    amount: AmountCents


class CustomerWithdrawOut(BaseModel):
    customer: str
    account: str
    balance: int = Field(description="the account's balance after the withdrawal (it may be below zero)")
    checked_combined: int = Field(description="the two accounts' sum the rule's check read before the debit")


class CustomerOut(BaseModel):
    customer: str
    accounts: list[BalanceOut]
    combined: int = Field(description="the sum of the two balances: the rule keeps it at zero or above")
