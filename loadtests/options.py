"""Options of our own, added to Locust's parser.

Each is a flag and a `LOCUST_*` variable (`--verdict-json` is
`LOCUST_VERDICT_JSON`), and the ones that shape traffic show in the web UI.
A master hands them to its workers with the spawn message. Help texts name
their defaults in plain words: the web UI shows a help text as it is, and
would show a `%(default)s` raw.

The web UI's class picker is on by default, set here rather than in a
`locust.conf` or `[tool.locust]`, which Locust reads only from the current
directory: START then runs the classes ticked, not every class at once.

Example::

    locust -f loadtests/locustfile.py DepositUser --accounts acc-00 --amounts 1 --fail-on-anomaly
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass


def add_options(parser) -> None:
    """Listener of `events.init_command_line_parser`."""
    parser.set_defaults(class_picker=True)
    option = functools.partial(add_option, parser)
    option(
        "--accounts",
        "acc-00,acc-01,acc-02,acc-03",
        "accounts to deposit into and transfer between, comma-separated, or 'all'",
    )
    option("--amounts", "1", "amounts in cents, comma-separated; each request picks one")
    option("--batch-size", 3, "amounts per batch deposit", type=int)
    option("--skus", "widget,flash-sale", "SKUs to check out, comma-separated; each checkout picks one")
    option(
        "--reset-first",
        True,
        "POST /admin/reset before the run (balances, stock, counters)",
        action=argparse.BooleanOptionalAction,
    )
    option(
        "--admin-token",
        "",
        "bankapp's admin_token, sent with the reset and the settings read (a server bound beyond loopback wants it)",
        include_in_web_ui=False,
    )
    option("--verdict-json", "", "write the verdict as JSON to this path", include_in_web_ui=False)
    option(
        "--team",
        "",
        "a room's team: every request goes to /teams/NAME/... and the verdict reads that team's books",
    )
    option(
        "--fail-on-anomaly",
        False,
        "exit with code 1 when any check of the verdict fails",
        action="store_true",
        include_in_web_ui=False,
    )
    option(
        "--request-timeout",
        0.1,
        "seconds RetryingDepositUser waits for each try before it gives up and retries",
        type=float,
    )
    option("--retries", 3, "retries of a deposit that got no definite answer (RetryingDepositUser)", type=int)
    option("--retry-backoff", 0.5, "seconds before the first retry, doubled before each next one", type=float)
    option(
        "--idempotency-keys",
        True,
        "each deposit of RetryingDepositUser carries one Idempotency-Key, reused by its retries",
        action=argparse.BooleanOptionalAction,
    )
    option("--spike-users", 32, "users at the top of the spike", type=int)
    option("--baseline-users", 4, "users before and after", type=int)


def add_option(parser, flag: str, default, text: str, **kwargs) -> None:
    """One option, its `LOCUST_*` variable named after the flag and its default told in its help text."""
    shown = ("on" if default else "off") if isinstance(default, bool) else default
    parser.add_argument(
        flag,
        default=default,
        env_var="LOCUST_" + flag.lstrip("-").replace("-", "_").upper(),
        help=f"{text} [{shown}]" if shown != "" else text,
        **kwargs,
    )


@dataclass(frozen=True)
class Plan:
    """What this process's users send, from the parsed options."""

    accounts: tuple[str, ...]
    amounts: tuple[int, ...]
    batch_size: int
    skus: tuple[str, ...]
    request_timeout: float = 0.1
    retries: int = 3
    retry_backoff: float = 0.5
    idempotency_keys: bool = True

    @property
    def unit_amount(self) -> int | None:
        """The amount of every deposit, when there is only one."""
        return self.amounts[0] if len(set(self.amounts)) == 1 and self.batch_size >= 1 else None


def split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def make_plan(options, server_accounts: list[str]) -> Plan:
    """A plan from Locust's parsed options; 'all' means every account the server lists."""
    accounts = split(getattr(options, "accounts", "all"))
    if accounts in ((), ("all",)):
        accounts = tuple(server_accounts)
    amounts = tuple(int(amount) for amount in split(getattr(options, "amounts", "1")))
    if not amounts or min(amounts) < 1:
        raise ValueError(f"--amounts must be positive integers of cents, not {options.amounts!r}")
    return Plan(
        accounts=accounts,
        amounts=amounts,
        batch_size=max(1, int(getattr(options, "batch_size", 3))),
        skus=split(getattr(options, "skus", "widget")) or ("widget",),
        request_timeout=positive(getattr(options, "request_timeout", 0.1), "--request-timeout"),
        retries=max(0, int(getattr(options, "retries", 3))),
        retry_backoff=max(0.0, float(getattr(options, "retry_backoff", 0.5))),
        idempotency_keys=bool(getattr(options, "idempotency_keys", True)),
    )


def positive(value, flag: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(f"{flag} must be a positive number of seconds, not {value!r}")
    return seconds
