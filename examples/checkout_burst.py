"""Fire a burst of concurrent checkouts and print what came back and what /stats counted.

    python examples/checkout_burst.py                                   # 24 x widget at 127.0.0.1:8000
    python examples/checkout_burst.py --sku flash-sale --quantity 10    # the 100-unit flash sale
    python examples/checkout_burst.py --url http://127.0.0.1:8000 --clients 24 --no-reset

Each client is a thread with its own connection; a barrier releases them
together, so all 24 arrive at once. Start the server first with the guard to
study, for example `bankapp serve --checkout-guard semaphore --capacity 8`.
Unless `--no-reset`, stock and counters are reset first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
from collections import Counter
from urllib.parse import urlsplit

#: The admin token, when the server wants one (a room's: a team's token opens its own reset).
TOKEN = os.environ.get("BANKAPP_ADMIN_TOKEN")


def call(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """`path` under `url`'s own: `/checkout` of http://room:8000/teams/red is /teams/red/checkout."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    payload = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if payload else {}
    if TOKEN:
        headers["Authorization"] = f"Bearer {TOKEN}"
    connection.request(method, parts.path.rstrip("/") + path, body=payload, headers=headers)
    response = connection.getresponse()
    status, data = response.status, json.loads(response.read() or b"{}")
    connection.close()
    return status, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--sku", default="widget")
    parser.add_argument("--quantity", type=int, default=1)
    parser.add_argument("--no-reset", action="store_true", help="keep stock and counters as they are")
    args = parser.parse_args()
    if not args.no_reset:
        call(args.url, "POST", "/admin/reset")
    start = threading.Barrier(args.clients, timeout=10)
    answers: list[tuple[int, dict]] = []

    def client() -> None:
        start.wait()
        answers.append(call(args.url, "POST", "/checkout", {"sku": args.sku, "quantity": args.quantity}))

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    checkout = call(args.url, "GET", "/stats")[1]["checkout"]
    seen = Counter(status for status, _ in answers)
    print(f"{args.clients} x {{sku: {args.sku}, quantity: {args.quantity}}} under checkout_guard {checkout['guard']}")
    print("  answers:      " + ", ".join(f"{count} x {status}" for status, count in sorted(seen.items())))
    rejection = next((body for status, body in answers if status == 503), None)
    if rejection:
        print(f"  a 503 says:   {rejection['detail']}")
    print(
        f"  /stats:       capacity {checkout['capacity']}, peak_in_flight {checkout['peak_in_flight']}, "
        f"admitted {checkout['admitted']}, rejected {checkout['rejected']}, "
        f"available_permits {checkout['available_permits']}"
    )
    print(
        f"  latency ms:   p50 {checkout['latency_ms']['p50']}, p99 {checkout['latency_ms']['p99']}; "
        f"waited p99 {checkout['wait_ms']['p99']}"
    )
    print(
        f"  {args.sku}: sold {checkout['sold'][args.sku]}, stock now {checkout['stock'][args.sku]}, "
        f"oversold (all SKUs) {checkout['oversold']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
