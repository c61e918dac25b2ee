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


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)


def call(connection: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    payload = None if body is None else json.dumps(body)
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
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
    settled = limits[-1]
    within = gateway - 1 <= settled <= 2 * gateway
    print(f"  limit each second: {' '.join(map(str, limits))}")
    print(f"  settled at {settled}: within G - 1 .. 2G ({gateway - 1}..{2 * gateway}): {'yes' if within else 'no'}")
    print(f"  answers: {', '.join(f'{count} x {status}' for status, count in sorted(answers.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
