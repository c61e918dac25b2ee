"""What the server holds: its balances, counters, audit and settings, over HTTP.

The master (or the single local process) reads these at the start and at the
end of a run; users never do. A path the server does not serve (a section
still to come, an older server) reads as None rather than failing the run.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

TIMEOUT = 15


def call(host: str, method: str, path: str, body: dict | None = None) -> Any:
    """JSON of a 2xx answer; None for 404/405 (the server lacks the path)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        host.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        if error.code in (404, 405):
            return None
        raise


def reset(host: str) -> None:
    """Balances, stock and counters back to the start; settings stay."""
    call(host, "POST", "/admin/reset")


def account_ids(host: str) -> list[str]:
    listing = call(host, "GET", "/accounts") or {}
    return [row["id"] for row in listing.get("accounts", [])]


def snapshot(host: str, audit: bool = False) -> dict[str, Any]:
    """Balances, `/stats`, settings, catalogue stock and (on request) `/audit`."""
    listing = call(host, "GET", "/accounts")
    stats = call(host, "GET", "/stats")
    return {
        "balances": None if listing is None else {row["id"]: row["balance"] for row in listing["accounts"]},
        "stats": stats,
        "config": call(host, "GET", "/admin/config"),
        "audit": call(host, "GET", "/audit") if audit else None,
        "stock": stock_levels(stats),
    }


def stock_levels(stats: dict | None) -> dict[str, int] | None:
    """`{sku: units}` from the checkout section of `/stats`, whichever of the likely shapes it has."""
    stock = ((stats or {}).get("checkout") or {}).get("stock")
    if isinstance(stock, list):
        stock = {row.get("sku"): row for row in stock if isinstance(row, dict)}
    if not isinstance(stock, dict):
        return None
    levels = {}
    for sku, value in stock.items():
        if isinstance(value, dict):
            value = next((value[k] for k in ("remaining", "stock", "available", "units") if k in value), None)
        if isinstance(value, int) and not isinstance(value, bool):
            levels[sku] = value
    return levels
