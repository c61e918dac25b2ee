"""Show a lost update over HTTP, then its fix, with nothing but threads.

    python examples/lost_update.py --serve          # starts its own server
    python examples/lost_update.py --url http://127.0.0.1:8000

Sixteen threads each open a connection and deposit 1 cent into acc-00, again
and again, first under the guard `unsafe`, then under `lock`, switched live
with `PATCH /admin/config` (`--guards` picks others: `row-lock` and the other
database guards against the postgres store), and switched back to the guard
in force before, at the end, so the server is left as it was found. Each
line ends with how many worker processes served the connections. Every
deposit is acknowledged (200), yet under
`unsafe` the balance falls short: two threads read the same balance, both
add one, and the second write erases the first.

A deposit that is not answered 200 is not acknowledged: each round says
how many were refused, by status and problem type, with the server's own
words for the first of each kind (a 503 `lock-timeout` waited past
`lock_timeout_ms`; a 503 `server-busy` found every thread in use). And
since every deposit waits `race_window_ms` between its read and its write,
a wide window (lesson 3 sets 500 ms) makes a round slow: it says so before
it starts, with an estimate, and how to narrow the window first.

The lesson of `Thread.start()` and `join()` is here too: `start()` runs the
target once in a new thread; `join()` waits for it to finish.

The clients use nothing but the standard library, so this file also runs
against a bankapp started anywhere (`--url`). `--serve` starts one on a free
loopback port with `ServerProcess`, the helper bankapp's tests and tools use
(`bankapp/server/processes.py`), and stops it by PID at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

#: The admin token, when the server wants one (a room's server, or one bound beyond loopback): a team's token
#: opens that team's admin routes.
TOKEN = os.environ.get("BANKAPP_ADMIN_TOKEN")


def call(connection: Connection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """`path` under the connection's URL: `/stats` of http://room:8000/teams/red is /teams/red/stats."""
    payload = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if payload else {}
    if TOKEN:
        headers["Authorization"] = f"Bearer {TOKEN}"
    connection.request(method, connection.prefix + path, body=payload, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


class Connection(http.client.HTTPConnection):
    """A connection to the server of a URL that remembers the path the URL starts with (a team's /teams/NAME)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        super().__init__(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        self.prefix = parts.path.rstrip("/")


def admin(url: str, method: str, path: str, body: dict | None = None) -> dict:
    """One request on a connection of its own: an idle keep-alive connection
    is closed by gunicorn after 2 s, longer than a round can take."""
    connection = Connection(url)
    try:
        return call(connection, method, path, body)[1]
    finally:
        connection.close()


def run_round(url: str, guard: str, threads: int, deposits: int) -> dict:
    admin(url, "PATCH", "/admin/config", {"deposit_guard": guard})
    admin(url, "POST", "/admin/reset")
    acknowledged = [0] * threads
    refused: Counter[str] = Counter()  # "503 lock-timeout": how many deposits got that answer instead of 200
    said: dict[str, str] = {}  # the server's detail of the first answer of each kind
    counting = threading.Lock()  # the clients share these two: a count is a read-modify-write too
    served_by: set[int] = set()  # the worker processes the clients' connections landed on
    start = threading.Barrier(threads)

    def client(index: int) -> None:
        connection = Connection(url)
        start.wait()  # everyone begins together: the race needs company
        for _ in range(deposits):
            status, answer = call(connection, "POST", "/accounts/acc-00/deposit", {"amount": 1})
            acknowledged[index] += status == 200
            if status != 200:
                kind = f"{status} {str(answer.get('type', 'no problem type')).rsplit(':', 1)[-1]}"
                with counting:
                    refused[kind] += 1
                    said.setdefault(kind, str(answer.get("detail", "")))
        served_by.add(call(connection, "GET", "/threads")[1]["pid"])  # same connection, same worker
        connection.close()

    workers = [threading.Thread(target=client, args=(i,), name=f"client-{i:02d}") for i in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    deposits_seen = admin(url, "GET", "/stats")["deposits"]
    return {
        "guard": guard,
        "acknowledged": sum(acknowledged),
        "balance_change": deposits_seen["balance_change"],
        "lost": deposits_seen["lost_updates"],
        "seconds": elapsed,
        "workers": len(served_by),
        "refused": dict(refused),
        "said": said,
    }


def refusals(row: dict, sent: int) -> list[str]:
    """The lines under a round's row for the deposits answered something else than 200."""
    count = sum(row["refused"].values())
    if not count:
        return []
    lines = [f"{'':16}refused {count:>5} of {sent}: not acknowledged, so not in the counts above"]
    for kind, times in sorted(row["refused"].items(), key=lambda item: -item[1]):
        detail = row["said"].get(kind, "")
        detail = detail if len(detail) <= 110 else detail[:107] + "..."
        lines.append(f"{'':18}{times} x {kind}" + (f": {detail}" if detail else ""))
    return lines


#: A run this long, or longer, is announced with its estimate before it starts.
LONG_RUN_S = 5.0
#: Guards that let one deposit at a time into an account: a round's deposits then run one after another.
ONE_AT_A_TIME = {"lock", "rlock", "row-lock", "advisory-lock"}


def estimate(config: dict, guards: list[str], threads: int, deposits: int) -> tuple[float, list[str]]:
    """Seconds the rounds will take at least, from the race window, and the guards that will refuse deposits.

    Every deposit waits `race_window_ms`, so a thread's deposits take at least
    deposits x window. Under a guard that admits one deposit at a time the
    threads queue: each deposit waits for the others' windows, or gives up
    after `lock_timeout_ms` (a 503 lock-timeout), whichever comes first.
    """
    window = float(config.get("race_window_ms") or 0) / 1000
    timeout = config.get("lock_timeout_ms")
    total, refusing = 0.0, []
    for guard in guards:
        exclusive = guard in ONE_AT_A_TIME or (guard == "semaphore" and config.get("deposit_permits") == 1)
        per_deposit = window
        if exclusive:
            queued = threads * window  # every other thread's window before this one's turn
            per_deposit = queued if timeout is None else min(queued, float(timeout) / 1000 + window)
            if timeout is not None and (threads - 1) * window > float(timeout) / 1000:
                refusing.append(guard)
        total += deposits * per_deposit
    return total, refusing


def warn_if_long(url: str, config: dict, guards: list[str], threads: int, deposits: int) -> None:
    seconds, refusing = estimate(config, guards, threads, deposits)
    if seconds < LONG_RUN_S and not refusing:
        return
    window = config.get("race_window_ms")
    if seconds >= LONG_RUN_S:
        print(
            f"  race_window_ms is {window:g}: every deposit waits {window:g} ms between its read and its write, "
            f"so this run takes about {seconds:.0f} s"
        )
    if refusing:
        print(
            f"  under {', '.join(refusing)} the {threads} threads queue for one account longer than lock_timeout_ms "
            f"({config.get('lock_timeout_ms'):g}): most deposits will be refused (503 lock-timeout)"
        )
    print(
        "  for a quick run narrow the window first: curl -s -o /dev/null -X PATCH -H 'Content-Type: application/json' "
        f"-d '{{\"race_window_ms\": 1}}' {url}/admin/config",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="a running bankapp [%(default)s]")
    parser.add_argument("--serve", action="store_true", help="start a bankapp server of its own on a free port")
    parser.add_argument("--threads", type=int, default=16, help="client threads [%(default)s]")
    parser.add_argument("--deposits", type=int, default=50, help="deposits per thread [%(default)s]")
    parser.add_argument("--guards", default="unsafe,lock", help="guards to try in turn [%(default)s]")
    args = parser.parse_args()
    server = None
    if args.serve:
        from bankapp.server.processes import ProcessError, ServerProcess

        try:
            server = ServerProcess()
        except ProcessError as error:
            raise SystemExit(str(error)) from None
    url = server.url if server else args.url
    try:
        config = admin(url, "GET", "/admin/config")
        found = config["deposit_guard"]
        print(f"{args.threads} threads x {args.deposits} deposits of 1 cent into acc-00 at {url}")
        warn_if_long(url, config, args.guards.split(","), args.threads, args.deposits)
        try:
            for guard in args.guards.split(","):
                row = run_round(url, guard, args.threads, args.deposits)
                share = row["lost"] / row["acknowledged"] if row["acknowledged"] else 0
                print(
                    f"  {guard:<13} acknowledged {row['acknowledged']:>5}  balance grew {row['balance_change']:>5}  "
                    f"lost {row['lost']:>5} ({share:.1%})  in {row['seconds']:.1f} s, "
                    f"{row['workers']} worker{'s' if row['workers'] > 1 else ''}",
                    *refusals(row, args.threads * args.deposits),
                    sep="\n",
                    flush=True,
                )
        finally:
            admin(url, "PATCH", "/admin/config", {"deposit_guard": found})
        if not server and found not in args.guards.split(",")[-1:]:
            print(f"  deposit_guard back to {found}, as it was")
    finally:
        if server:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
