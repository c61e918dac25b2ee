"""What the server holds: its balances, counters, audit and settings, over HTTP.

The master (or the single local process) reads these at the start and at the
end of a run; users never do. A path the server does not serve (a section
still to come, an older server) reads as None rather than failing the run.
The admin routes (the reset, the settings) carry `token`, bankapp's
`admin_token`, when one is given: a server bound beyond loopback (a room, a
container) wants it from every client.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

TIMEOUT = 15


def call(host: str, method: str, path: str, body: dict | None = None, token: str = "") -> Any:
    """JSON of a 2xx answer; None for 404/405 (the server lacks the path).

    A 401 or 403 raises a `PermissionError` (an `OSError`, like every other
    way of not reaching the server) that says how to give Locust the token.
    """
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(host.rstrip("/") + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        if error.code in (404, 405):
            return None
        if error.code in (401, 403):
            given = "was refused" if token else "is needed"
            raise PermissionError(
                f"{method} {path} answered {error.code}: the server's admin_token {given}; give Locust "
                "--admin-token (or LOCUST_ADMIN_TOKEN) the token bankapp serve was started with"
            ) from None
        raise


def reset(host: str, token: str = "") -> None:
    """Balances, stock and counters back to the start; settings stay."""
    call(host, "POST", "/admin/reset", token=token)


def account_ids(host: str) -> list[str]:
    listing = call(host, "GET", "/accounts") or {}
    return [row["id"] for row in listing.get("accounts", [])]


def snapshot(host: str, audit: bool = False, token: str = "") -> dict[str, Any]:
    """Balances, `/stats`, who erased whom (`/debug/races`), settings, catalogue stock and (on request) `/audit`."""
    listing = call(host, "GET", "/accounts")
    stats = call(host, "GET", "/stats")
    races = call(host, "GET", "/debug/races?limit=50")
    return {
        "balances": None if listing is None else {row["id"]: row["balance"] for row in listing["accounts"]},
        "stats": stats,
        "races": races,
        "config": call(host, "GET", "/admin/config", token=token),
        "audit": call(host, "GET", "/audit") if audit else None,
        "stock": stock_levels(stats),
    }


def stock_levels(stats: dict | None) -> dict[str, int] | None:
    """`{sku: units}`, as the checkout section of `/stats` holds it."""
    stock = ((stats or {}).get("checkout") or {}).get("stock")
    return dict(stock) if isinstance(stock, dict) else None


def in_flight(stats: dict | None) -> int:
    """Transfers and checkouts the server is still working on (or queueing), from `/stats`."""
    stats = stats or {}
    transfers, checkout = stats.get("transfers") or {}, stats.get("checkout") or {}
    return sum(
        section.get(key) or 0
        for section, key in ((transfers, "in_flight"), (checkout, "in_flight"), (checkout, "waiting"))
    )


def wait_until_quiet(host: str, timeout: float, pause: float = 0.05) -> int:
    """Wait until the server works on nothing, as two reads of `/stats` in a row say; what is left in flight.

    A stopped user's last request goes on without it: a transfer between its
    debit and its credit would show in the balances as money missing, though
    at rest it is all there. So the verdict reads the server once it is
    still, or after `timeout` seconds (a deadlock that nobody breaks).
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    while True:
        busy = in_flight(call(host, "GET", "/stats"))
        quiet = quiet + 1 if busy == 0 else 0
        if quiet == 2 or time.monotonic() >= deadline:
            return busy
        time.sleep(pause)


def team_host(host: str | None, team: str) -> str | None:
    """The host a run against a room's `team` uses: `http://h:8000/teams/red`, so that every path the users and
    the verdict ask for is the team's own (`--team`). Once only: a worker may be handed the master's already."""
    if not host or not team:
        return host
    suffix = f"/teams/{team}"
    host = host.rstrip("/")
    return host if host.endswith(suffix) else host + suffix
