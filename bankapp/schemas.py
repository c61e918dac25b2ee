"""Request and response shapes: the one source of truth for validation.

flask-openapi3 validates every request against these models before a view
runs, and writes the OpenAPI document from them. Models are strict: `true`,
`1.5` and `"100"` are not amounts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: The largest amount one request may move: 1,000,000.00 in cents.
MAX_AMOUNT = 100_000_000
MAX_BATCH = 1000
#: The most units one checkout may ask for.
MAX_QUANTITY = 10_000


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


AmountCents = Annotated[int, Field(gt=0, le=MAX_AMOUNT, description="integer cents, 1 .. 100000000")]


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
    quantity: int = Field(gt=0, le=MAX_QUANTITY, description="whole units, 1 .. 10000")


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
