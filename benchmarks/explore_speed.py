"""How fast `bankapp explore` runs, and how much partial-order reduction saves, per scenario at 2 and 3 threads.

For each scenario and guard: the schedules run (one per class of
equivalent ones), all the schedules they stand for, the wall time, the
schedules run per second, and the share DPOR skipped. Where a search
without reduction is small enough (`--brute-limit`), it is run too, in the
same process, and its time is the ratio's other side.

    python benchmarks/explore_speed.py [--brute-limit 20000]
"""

from __future__ import annotations

import argparse
import time

from bankapp.explore import explore
from bankapp.interleave.scenarios import SCENARIOS
from bankapp.settings import load

CASES = [
    ("deposit", "unsafe"),
    ("deposit", "lock"),
    ("withdraw", "unsafe"),
    ("batch", "lock"),
    ("transfer", "naive"),
    ("transfer", "ordered"),
    ("transfer", "release-first"),
    ("transfer", "unsafe"),
    ("transfer", "backoff"),
    ("audit", "release-first"),
    ("checkout", "unsafe"),
    ("checkout", "semaphore"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brute-limit", type=int, default=20_000, help="run without reduction up to this many")
    args = parser.parse_args()
    config = load({})
    print(f"{'scenario':<9} {'guard':<14} {'n':>2} {'run':>5} {'all':>16} {'skipped':>9} {'s':>7} {'run/s':>7}  brute")
    for scenario, guard in CASES:
        least, most = SCENARIOS[scenario].least, min(3, SCENARIOS[scenario].most)
        for n in sorted({least, most}):
            started = time.perf_counter()
            result = explore(config, scenario, guard, n)
            took = time.perf_counter() - started
            total = result["schedules"] + result["equivalent"]
            skipped = result["equivalent"] / total
            brute = ""
            if total <= args.brute_limit:
                started = time.perf_counter()
                explore(config, scenario, guard, n, reduce=False)
                brute_took = time.perf_counter() - started
                brute = f"{brute_took:.2f} s without reduction ({brute_took / took:.1f} x)"
            print(
                f"{scenario:<9} {guard:<14} {n:>2} {result['schedules']:>5} {total:>16,} {skipped:>8.1%} "
                f"{took:>7.2f} {result['schedules'] / took:>7.0f}  {brute}"
            )


if __name__ == "__main__":
    main()
