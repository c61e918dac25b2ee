"""How fast `bankapp explore` runs, and how much partial-order reduction saves, per scenario at 2 and 3 threads.

For each scenario and guard: the schedules run (one per class of
equivalent ones), all the schedules they stand for, the wall time, the
schedules run per second, and the share DPOR skipped. Where a search
without reduction is small enough (`--brute-limit`), it is run too, in the
same process, and its time is the ratio's other side.

    python benchmarks/explore_speed.py [--brute-limit 20000] [--database-url URL [--database-most]]

With `--database-url` (a PostgreSQL database; the explorer makes and drops
a scratch schema in it) the rows are the postgres store's, explored on the
database, a step a SQL statement (`bankapp explore --url` on a server of
that store): 2 threads, and 3 with `--database-most` (the ring of 3 under
`ordered` takes about a minute).
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

#: On the database: the postgres store's deposit guards and the transfer desk's policies.
DATABASE_CASES = [
    ("deposit", "row-lock"),
    ("deposit", "advisory-lock"),
    ("deposit", "atomic-update"),
    ("deposit", "serializable"),
    ("withdraw", "row-lock"),
    ("write-skew", "unsafe"),
    ("write-skew", "row-lock"),
    ("transfer", "naive"),
    ("transfer", "ordered"),
    ("transfer", "unsafe"),
    ("transfer", "release-first"),
    ("audit", "release-first"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brute-limit", type=int, default=20_000, help="run without reduction up to this many")
    parser.add_argument("--database-url", help="explore the postgres store's guards on this database instead")
    parser.add_argument("--database-most", action="store_true", help="on the database, 3 threads too")
    args = parser.parse_args()
    config = load({})
    cases = CASES
    if args.database_url:
        config = load({"store": "postgres", "database_url": args.database_url, "race_window_ms": 1, "threads": 8})
        cases = DATABASE_CASES
    print(f"{'scenario':<9} {'guard':<14} {'n':>2} {'run':>5} {'all':>16} {'skipped':>9} {'s':>7} {'run/s':>7}  brute")
    for scenario, guard in cases:
        least, most = SCENARIOS[scenario].least, min(3, SCENARIOS[scenario].most)
        if args.database_url and not args.database_most:
            most = least
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
