"""Overload the checkout and watch the `adaptive` guard find its limit.

    python examples/adaptive_limit.py                         # 32 clients for 12 s at 127.0.0.1:8000
    python examples/adaptive_limit.py --url http://127.0.0.1:8000 --clients 32 --seconds 12

Each client is a thread with its own connection, checking out again as soon
as it has an answer (a closed loop), far more than the gateway serves at
full speed. Every second the example reads `limit` from /stats; at the end
it says where the limit settled against the gateway's `gateway_capacity` G:
a limit driven by latency only sees a queue once there is one, so it
settles a little above G, and within G - 1 .. 2G. Start the server with the
guard first: `bankapp serve --checkout-guard adaptive` (or `bankapp lesson 18`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

#: How long a client turned away waits before it tries again: clients that retry a 503 at once would spend
#: the cores on refusals, and on a 2-core machine starve the very checkouts whose latency the guard reads.
RETRY_PAUSE_S = 0.05


class Connection(http.client.HTTPConnection):
    """A connection to the server of a URL that remembers the path the URL starts with (a team's /teams/NAME)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        super().__init__(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        self.prefix = parts.path.rstrip("/")


def connect(url: str) -> Connection:
    return Connection(url)


def call(connection: Connection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """`path` under the connection's URL: `/checkout` of http://room:8000/teams/red is /teams/red/checkout."""
    payload = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if payload else {}
    connection.request(method, connection.prefix + path, body=payload, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server [%(default)s]")
    parser.add_argument("--clients", type=int, default=32, help="client threads [%(default)s]")
    parser.add_argument("--seconds", type=float, default=12, help="how long to overload it [%(default)s]")
    args = parser.parse_args()

    stats = connect(args.url)
    checkout = call(stats, "GET", "/stats")[1]["checkout"]
    if checkout["guard"] != "adaptive":
        print(f"checkout_guard is {checkout['guard']}: start with --checkout-guard adaptive", file=sys.stderr)
        return 2
    gateway = checkout["gateway_capacity"]
    print(
        f"{args.clients} clients checking out for {args.seconds:g} s under checkout_guard adaptive, "
        f"gateway_capacity {gateway}, limit now {checkout['limit']}"
    )
    tallies: list[Counter[int]] = [Counter() for _ in range(args.clients)]  # one each: no shared counter to race on
    stop = threading.Event()

    def client(answers: Counter[int]) -> None:
        connection = connect(args.url)
        try:
            while not stop.is_set():
                status, _ = call(connection, "POST", "/checkout", {"sku": "widget", "quantity": 1})
                answers[status] += 1
                if status == 503:  # turned away: wait a moment, as a client told Retry-After would, not spin
                    stop.wait(RETRY_PAUSE_S)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(tally,), daemon=True) for tally in tallies]
    for thread in threads:
        thread.start()
    limits = []
    began = time.monotonic()
    while time.monotonic() - began < args.seconds:
        time.sleep(1)
        limits.append(call(stats, "GET", "/stats")[1]["checkout"]["limit"])
    stop.set()
    for thread in threads:
        thread.join(60)
    stats.close()
    answers = sum(tallies, Counter())
    settled = sorted(limits[len(limits) // 2 :])[len(limits[len(limits) // 2 :]) // 2]  # the second half's median
    within = gateway - 1 <= settled <= 2 * gateway
    print(f"  limit each second: {' '.join(map(str, limits))}")
    print(f"  settled at {settled}: within G - 1 .. 2G ({gateway - 1}..{2 * gateway}): {'yes' if within else 'no'}")
    print(f"  answers: {', '.join(f'{count} x {status}' for status, count in sorted(answers.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
