"""Requests/s of deposit under each guard, against two baselines, in one run.

    python benchmarks/deposit_guards.py [--duration 5] [--connections 16] [--rounds 5] [--guards lock] [--base COMMIT]

Starts two servers on free loopback ports with the same gunicorn settings
(gthread, one worker, `--threads` threads): `bankapp serve --race-window-ms
0`, and the ten-minute Flask deposit of `minimal_deposit.py` (a dict, a
`Lock` per account, `request.get_json()`, a 400 on a bad amount). wrk
(Debian package `wrk`) drives each in turn, in interleaved rounds so that a
noisy neighbour hits every row alike:

- `GET /healthz` of bankapp, the bare endpoint (no body, no guard, no store);
- `POST /accounts/<random>/deposit` of the minimal app, the baseline;
- bankapp's deposit under each guard, switched live with PATCH;
- with `--base COMMIT`, the same deposits on bankapp at COMMIT (exported
  with `git archive`, served beside it): before and after, in one run.

With no race window a guard costs only its acquire and release, so a row's
ratio to the minimal deposit says what everything else bankapp does costs:
validation against the OpenAPI models, problem details, idempotency, the
hardened worker, the lab's counters and lock bookkeeping. Target: deposit
under `lock` at least 0.95 of the minimal deposit (median of the rounds).

Requests/s on a shared machine move with the neighbours, so each row also
reports the CPU time the server's worker spent per request (from /proc, so
Linux only): the cost itself, which moves much less.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench_server import bench_server, start_minimal_server
from deposit_profile import export

from bankapp.server.processes import ServerProcess

DEPOSIT_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"amount": 1}'
request = function()
  return wrk.format(nil, string.format("/accounts/acc-%02d/deposit", math.random(0, 15)))
end
"""

CONFIGS = [("unsafe", 1), ("lock", 1), ("rlock", 1), ("semaphore", 1), ("semaphore", 4)]
TARGET = 0.95


def send(url: str, method: str, body: dict | None = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def worker_cpu(master_pid: int) -> float:
    """CPU seconds the gunicorn workers of `master_pid` have used so far (all of them, on a fleet)."""
    total = 0
    for worker in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split():
        fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


def wrk(url: str, duration: int, connections: int, master_pid: int, script: str | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        command += ["-s", script]
    cpu = worker_cpu(master_pid)
    output = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + 30).stdout
    cpu = worker_cpu(master_pid) - cpu
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else None
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p99_ms": p99_ms,
        "cpu_us": cpu / max(requests, 1) * 1e6,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def base_server(commit: str, folder: str, threads: int) -> ServerProcess:
    """bankapp at `commit`, exported into `folder` and imported from there.

    `PYTHONSAFEPATH` keeps `python -m bankapp` from putting the current
    folder first on the path, where the working tree's bankapp would win."""
    export(commit, folder)
    env = {"PYTHONPATH": folder, "PYTHONSAFEPATH": "1"}
    return ServerProcess("--race-window-ms", "0", "--threads", str(threads), env=env)


def measure(args: argparse.Namespace, script: str, folder: str) -> dict[str, list[dict]]:
    configs = [(guard, permits) for guard, permits in CONFIGS if guard in args.guards]
    bank = bench_server(args.threads)
    bank_url = bank.url
    minimal, minimal_url = start_minimal_server(args.threads)
    base = base_server(args.base, folder, args.threads) if args.base else None
    banks = [("", bank)] + ([(f" at {args.base}", base)] if base else [])
    measured: dict[str, list[dict]] = {}
    try:
        steps, step = args.rounds * (len(configs) * len(banks) + 2), 0
        for _ in range(args.rounds):

            def run(label: str, url: str, server, lua: str | None = script) -> dict:
                nonlocal step
                step += 1
                print(f"[{step}/{steps}] {label} ...", file=sys.stderr, flush=True)
                result = wrk(url, args.duration, args.connections, server.pid, lua)
                measured.setdefault(label, []).append(result)
                return result

            # both baselines in every round: each ratio compares measurements taken seconds apart
            run("bare", bank_url + "/healthz", bank, lua=None)
            baseline = run("minimal", minimal_url, minimal)
            for suffix, server in banks:
                unsafe = None
                for guard, permits in configs:
                    label = f"{guard}({permits})" if guard == "semaphore" else guard
                    send(server.url + "/admin/config", "PATCH", {"deposit_guard": guard, "deposit_permits": permits})
                    send(server.url + "/admin/reset", "POST")
                    result = run(label + suffix, server.url, server)
                    unsafe = result if label == "unsafe" else unsafe
                    result["ratio"] = result["rps"] / baseline["rps"]
                    result["cpu_ratio"] = baseline["cpu_us"] / result["cpu_us"]
                    result["vs_unsafe"] = result["rps"] / unsafe["rps"] if unsafe else None
    finally:
        bank.stop()
        if base:
            base.stop()
        minimal.terminate()
        minimal.wait(15)
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement [%(default)s]")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections [%(default)s]")
    parser.add_argument("--threads", type=int, default=32, help="server threads, both servers [%(default)s]")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians reported [%(default)s]")
    parser.add_argument("--guards", nargs="+", default=[g for g, _ in CONFIGS], help="guards to measure [all]")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--base", help="also serve bankapp at this commit and measure it in the same rounds")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(DEPOSIT_LUA)
    try:
        with tempfile.TemporaryDirectory() as folder:
            measured = measure(args, script.name, folder)
    finally:
        Path(script.name).unlink(missing_ok=True)
    rows = [summary(label, runs) for label, runs in measured.items()]
    print(f"\nmedians of {args.rounds} interleaved rounds of {args.duration} s, {args.connections} connections")
    print(f"{'server':<8} {'endpoint':<13} {'guard':<12} {'req/s':>7} {'p99 ms':>7} {'CPU us':>7} {'vs minimal':>10}")
    for row in rows:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(
            f"{row['server']:<8} {row['endpoint']:<13} {row['guard']:<12} {row['rps']:>7.0f} {row['p99_ms']:>7.2f} "
            f"{row['cpu_us']:>7.0f} {ratio:>10}  {' '.join(f'{r:.2f}' for r in row['ratios'])}"
        )
    lock = next((row for row in rows if row["guard"] == "lock"), None)
    if lock:
        verdict = "meets" if lock["ratio"] >= TARGET else "MISSES"
        print(
            f"\nbankapp deposit under lock: {lock['ratio']:.2f} of the minimal Flask deposit in requests/s "
            f"(rounds {', '.join(f'{r:.2f}' for r in lock['ratios'])}; {verdict} the {TARGET} target); "
            f"{lock['cpu_ratio']:.2f} of its CPU efficiency ({lock['cpu_us']:.0f} against "
            f"{next(row for row in rows if row['server'] == 'minimal')['cpu_us']:.0f} us of worker CPU per request)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def summary(label: str, runs: list[dict]) -> dict:
    server = "minimal" if label == "minimal" else "bankapp"
    ratios = [run["ratio"] for run in runs if "ratio" in run]
    return {
        "server": server,
        "endpoint": "GET /healthz" if label == "bare" else "POST deposit",
        "guard": "-" if label in ("bare", "minimal") else label,
        "rps": statistics.median(run["rps"] for run in runs),
        "p99_ms": statistics.median(run["p99_ms"] or 0 for run in runs),
        "cpu_us": statistics.median(run["cpu_us"] for run in runs),
        "ratio": statistics.median(ratios) if ratios else None,
        "ratios": ratios,
        "cpu_ratio": statistics.median(run["cpu_ratio"] for run in runs) if ratios else None,
        "non_2xx": sum(run["non_2xx"] for run in runs),
    }


if __name__ == "__main__":
    sys.exit(main())
