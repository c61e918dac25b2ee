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
import sys
import threading
import time
from urllib.parse import urlsplit


def call(connection: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    payload = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if payload else {}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def admin(url: str, method: str, path: str, body: dict | None = None) -> dict:
    """One request on a connection of its own: an idle keep-alive connection
    is closed by gunicorn after 2 s, longer than a round can take."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        return call(connection, method, path, body)[1]
    finally:
        connection.close()


def run_round(url: str, guard: str, threads: int, deposits: int) -> dict:
    parts = urlsplit(url)
    admin(url, "PATCH", "/admin/config", {"deposit_guard": guard})
    admin(url, "POST", "/admin/reset")
    acknowledged = [0] * threads
    served_by: set[int] = set()  # the worker processes the clients' connections landed on
    start = threading.Barrier(threads)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        start.wait()  # everyone begins together: the race needs company
        for _ in range(deposits):
            status, _ = call(connection, "POST", "/accounts/acc-00/deposit", {"amount": 1})
            acknowledged[index] += status == 200
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
    }


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
        found = admin(url, "GET", "/admin/config")["deposit_guard"]
        print(f"{args.threads} threads x {args.deposits} deposits of 1 cent into acc-00 at {url}")
        try:
            for guard in args.guards.split(","):
                row = run_round(url, guard, args.threads, args.deposits)
                share = row["lost"] / row["acknowledged"] if row["acknowledged"] else 0
                print(
                    f"  {guard:<13} acknowledged {row['acknowledged']:>5}  balance grew {row['balance_change']:>5}  "
                    f"lost {row['lost']:>5} ({share:.1%})  in {row['seconds']:.1f} s, "
                    f"{row['workers']} worker{'s' if row['workers'] > 1 else ''}"
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
