"""Requests/s of deposit under each guard against a bare endpoint, one server.

    python benchmarks/deposit_guards.py [--duration 5] [--connections 16] [--rounds 3]

Starts `bankapp serve --race-window-ms 0` on a free loopback port and drives
it with wrk (Debian package `wrk`): first `GET /healthz`, the bare endpoint
(no guard, no store), then `POST /accounts/<random>/deposit` under each guard
switched live with PATCH. With no race window, a guard costs only its
acquire and release; the ratio to the bare endpoint says what that costs.
Target: deposit under `lock` at least 0.85 of the bare endpoint.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench_server import bench_server

DEPOSIT_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"amount": 1}'
request = function()
  return wrk.format(nil, string.format("/accounts/acc-%02d/deposit", math.random(0, 15)))
end
"""

CONFIGS = [("unsafe", 1), ("lock", 1), ("rlock", 1), ("semaphore", 1), ("semaphore", 4)]
TARGET = 0.85


def send(url: str, method: str, body: dict | None = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def wrk(url: str, duration: int, connections: int, script: str | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else None
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": rps, "p99_ms": p99_ms, "non_2xx": int(errors.group(1)) if errors else 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement [%(default)s]")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections [%(default)s]")
    parser.add_argument("--threads", type=int, default=32, help="server threads [%(default)s]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported [%(default)s]")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(DEPOSIT_LUA)
    server = bench_server(args.threads)
    url = server.url
    measured: dict[str, list[dict]] = {}
    try:
        steps, step = args.rounds * (len(CONFIGS) + 1), 0
        for _ in range(args.rounds):
            # Bare endpoint first in every round: each ratio compares two
            # measurements taken seconds apart, so a noisy neighbour hits both.
            step += 1
            print(f"[{step}/{steps}] GET /healthz (bare endpoint) ...", file=sys.stderr, flush=True)
            bare = wrk(url + "/healthz", args.duration, args.connections)
            measured.setdefault("bare", []).append({**bare, "ratio": 1.0})
            for guard, permits in CONFIGS:
                step += 1
                label = f"{guard}({permits})" if guard == "semaphore" else guard
                print(f"[{step}/{steps}] deposit under {label} ...", file=sys.stderr, flush=True)
                send(url + "/admin/config", "PATCH", {"deposit_guard": guard, "deposit_permits": permits})
                send(url + "/admin/reset", "POST")
                result = wrk(url, args.duration, args.connections, script.name)
                unsafe = measured.get("unsafe", [None])[-1] if label != "unsafe" else result
                measured.setdefault(label, []).append(
                    {**result, "ratio": result["rps"] / bare["rps"], "vs_unsafe": result["rps"] / unsafe["rps"]}
                )
    finally:
        server.stop()
        Path(script.name).unlink(missing_ok=True)
    rows = []
    for label, runs in measured.items():
        rows.append(
            {
                "endpoint": "GET /healthz" if label == "bare" else "POST deposit",
                "guard": "-" if label == "bare" else label,
                "rps": statistics.median(r["rps"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] or 0 for r in runs),
                "ratio": statistics.median(r["ratio"] for r in runs),
                "ratios": [round(r["ratio"], 3) for r in runs],
                "vs_unsafe": statistics.median(r.get("vs_unsafe", 1.0) for r in runs),
                "non_2xx": sum(r["non_2xx"] for r in runs),
            }
        )
    print(f"\nmedians of {args.rounds} rounds of {args.duration} s, {args.connections} connections")
    print(f"{'endpoint':<14} {'guard':<13} {'req/s':>9} {'p99 ms':>8} {'vs bare':>8} {'vs unsafe':>9}  per round")
    for row in rows:
        print(
            f"{row['endpoint']:<14} {row['guard']:<13} {row['rps']:>9.0f} {row['p99_ms']:>8.2f} "
            f"{row['ratio']:>8.2f} {row['vs_unsafe']:>9.2f}  {' '.join(f'{r:.2f}' for r in row['ratios'])}  "
            f"{'#' * round(row['ratio'] * 30)}"
        )
    lock = next(row for row in rows if row["guard"] == "lock")
    verdict = "meets" if lock["ratio"] >= TARGET else "MISSES"
    print(f"\ndeposit under lock: {lock['ratio']:.2f} of the bare endpoint ({verdict} the {TARGET} target)")
    print(
        f"the guard's own cost: deposit under lock at {lock['vs_unsafe']:.2f} of deposit under unsafe; the rest "
        "of the gap to the bare endpoint is reading, parsing and validating a JSON body"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
