"""`bankapp explore SCENARIO [--guard G|all] [--threads N] [--max-schedules K] [--json] [--url URL]`.

Explores in this process (no server needed) under the settings of the
environment (`BANKAPP_*`), or, with `--url`, on that server
(`POST /admin/explore`) under the settings in force there. Exit 0 when no
schedule fails (and always for `--guard all`, a report rather than a
verdict), 1 when one does (or the code under test hangs), 2 for a usage error naming the bad value.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..interleave.scenarios import SCENARIOS
from ..settings import ENV_PREFIX, SettingsError, load
from .explorer import InvalidExplore, check, explore, guards_of
from .report import render, render_table


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "explore",
        help="try every interleaving of a scenario's threads; print the outcomes and the shortest failing one",
        description="Run every schedule of the scenario's threads (the steps of bankapp interleave: read, write, "
        "acquire, release), one thread at a time under a deterministic scheduler, schedules that differ only in "
        "the order of independent steps once (partial-order reduction). Prints the outcomes by kind and the "
        "shortest failing schedule, which replays with bankapp interleave. See docs/explore.md.",
        epilog="example: bankapp explore deposit --guard all",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--guard", help="the guard or transfer policy, or all for a table [the one in force]")
    parser.add_argument("--threads", type=int, help="how many threads (2 or 3; batch: 1) [the scenario's least]")
    parser.add_argument("--max-schedules", type=int, help="stop after this many schedules [no bound]")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--url", help="explore on this server (POST /admin/explore) instead of in this process")


def run(args: argparse.Namespace) -> int:
    try:
        scenario = check(args.scenario, args.guard, args.threads, args.max_schedules)
        guards = _every_guard(args, scenario) if args.guard == "all" else [args.guard]
        results = [_one(args, guard) for guard in guards]
    except (InvalidExplore, SettingsError) as error:
        print(f"bankapp explore: {error}", file=sys.stderr)
        return 2
    except _Refused as refused:
        print(f"bankapp explore: {refused}", file=sys.stderr)
        return refused.code
    if args.guard == "all":
        print(json.dumps(results, indent=2) if args.json else "\n".join(render_table(results)))
        return 0
    result = results[0]
    print(json.dumps(result, indent=2) if args.json else "\n".join(render(result, args.url)))
    hung = (result.get("stopped") or "").startswith("hang")  # the code under test did not come back: it fails
    return 1 if result["counterexample"] or hung else 0


def _every_guard(args: argparse.Namespace, scenario) -> list[str]:
    """`--guard all`: the guards of memory, and with `--url` on a server of the postgres store those explored on
    its database (its deposit guards; for transfers and audits its transfer policies, which replace memory's)."""
    if args.url is None or _store(args.url) != "postgres":
        return list(guards_of(scenario))
    from .db.rules import database_guards

    on_database = list(database_guards(scenario.name))
    if scenario.setting == "transfer_policy":
        return on_database  # on the postgres store a transfer is the desk's SQL; backoff is refused there
    return [guard for guard in guards_of(scenario) if guard not in on_database] + on_database


def _store(url: str) -> str | None:
    """The store of the server at `url` (`GET /admin/config`), or None if it does not say."""
    import requests

    token = os.environ.get(ENV_PREFIX + "ADMIN_TOKEN") or None
    try:
        response = requests.get(
            url.rstrip("/") + "/admin/config", headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=30
        )
    except requests.ConnectionError:
        raise _Refused(f"no server answers at {url.rstrip('/')}; start one first: bankapp serve", 2) from None
    if response.status_code >= 400:
        return None  # the explore itself will say what is wrong (a missing token: 401)
    return response.json().get("store")


#: How long `--url` waits for the server's exploration.
CLIENT_TIMEOUT_S = 600


class _Refused(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _one(args: argparse.Namespace, guard: str | None) -> dict:
    if args.url is None:
        return explore(load(), args.scenario, guard, args.threads, args.max_schedules)
    import requests

    url = args.url.rstrip("/")
    body = {"scenario": args.scenario, "guard": guard, "threads": args.threads, "max_schedules": args.max_schedules}
    token = os.environ.get(ENV_PREFIX + "ADMIN_TOKEN") or None
    try:
        response = requests.post(
            url + "/admin/explore",
            json={name: value for name, value in body.items() if value is not None},
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=CLIENT_TIMEOUT_S,
        )
    except requests.ConnectionError:
        raise _Refused(f"no server answers at {url}; start one first: bankapp serve", 2) from None
    except requests.Timeout:
        raise _Refused(
            f"{url} did not answer within {CLIENT_TIMEOUT_S} s (a database's schedules are not reduced: a ring of 3 "
            "runs thousands); bound the search with --max-schedules K",
            2,
        ) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise _Refused(detail, 2 if response.status_code < 500 else 1)
    return response.json()
