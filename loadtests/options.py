"""Options of our own, added to Locust's parser.

Each is a flag and a `LOCUST_*` variable (`--verdict-json` is
`LOCUST_VERDICT_JSON`), and the ones that shape traffic show in the web UI.
A master hands them to its workers with the spawn message.

Example::

    locust -f loadtests/locustfile.py DepositUser --accounts acc-00 --amounts 1 --fail-on-anomaly
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


def add_options(parser) -> None:
    """Listener of `events.init_command_line_parser`."""
    parser.add_argument(
        "--accounts",
        default="acc-00,acc-01,acc-02,acc-03",
        env_var="LOCUST_ACCOUNTS",
        help="accounts to deposit into and transfer between, comma-separated, or 'all' [%(default)s]",
    )
    parser.add_argument(
        "--amounts",
        default="1",
        env_var="LOCUST_AMOUNTS",
        help="amounts in cents, comma-separated; each request picks one [%(default)s]",
    )
    parser.add_argument(
        "--batch-size", type=int, default=3, env_var="LOCUST_BATCH_SIZE", help="amounts per batch deposit [3]"
    )
    parser.add_argument(
        "--skus",
        default="widget,flash-sale",
        env_var="LOCUST_SKUS",
        help="SKUs to check out, comma-separated; each checkout picks one [%(default)s]",
    )
    parser.add_argument(
        "--reset-first",
        action=argparse.BooleanOptionalAction,
        default=True,
        env_var="LOCUST_RESET_FIRST",
        help="POST /admin/reset before the run (balances, stock, counters) [on]",
    )
    parser.add_argument(
        "--verdict-json",
        default="",
        env_var="LOCUST_VERDICT_JSON",
        include_in_web_ui=False,
        help="write the verdict as JSON to this path",
    )
    parser.add_argument(
        "--fail-on-anomaly",
        action="store_true",
        default=False,
        env_var="LOCUST_FAIL_ON_ANOMALY",
        include_in_web_ui=False,
        help="exit with code 1 when any check of the verdict fails",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=0.1,
        env_var="LOCUST_REQUEST_TIMEOUT",
        help="seconds RetryingDepositUser waits for each try before it gives up and retries [%(default)s]",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        env_var="LOCUST_RETRIES",
        help="retries of a deposit that got no definite answer (RetryingDepositUser) [%(default)s]",
    )
    parser.add_argument(
        "--retry-backoff",
        type=float,
        default=0.5,
        env_var="LOCUST_RETRY_BACKOFF",
        help="seconds before the first retry, doubled before each next one [%(default)s]",
    )
    parser.add_argument(
        "--idempotency-keys",
        action=argparse.BooleanOptionalAction,
        default=True,
        env_var="LOCUST_IDEMPOTENCY_KEYS",
        help="each deposit of RetryingDepositUser carries one Idempotency-Key, reused by its retries [on]",
    )
    parser.add_argument(
        "--spike-users", type=int, default=32, env_var="LOCUST_SPIKE_USERS", help="users at the top of the spike [32]"
    )
    parser.add_argument(
        "--baseline-users", type=int, default=4, env_var="LOCUST_BASELINE_USERS", help="users before and after [4]"
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
