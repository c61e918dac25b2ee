"""Which scenarios and guards are explored on the database, and why the others are not (no psycopg here).

On a server of the postgres store, `bankapp explore --url` and `bankapp
interleave` run on the database (`database.explore_database`,
`db.replay.replay_database`) the postgres store's deposit guards
(`row-lock`, `advisory-lock`, `atomic-update`, `serializable`), its
transfer desk under every policy but `backoff` (transfers and audits), and
write skew under `unsafe` too; what cannot be explored there is a usage
error that says why, never skipped in silence.
"""

from __future__ import annotations

from ...settings import Config
from ..outcomes import InvalidExplore

#: How many threads each runs at most (write skew: one withdrawal per account of the pair; audit: one of each).
MOST = {"deposit": 3, "withdraw": 3, "write-skew": 2, "transfer": 3, "audit": 2}
#: The guards (deposit guards or transfer policies) each scenario runs under on the database.
DEPOSIT_GUARDS = ("row-lock", "advisory-lock", "atomic-update", "serializable")
TRANSFER_POLICIES = ("naive", "ordered", "release-first", "unsafe")
DATABASE_GUARDS_OF = {
    "deposit": DEPOSIT_GUARDS,
    "withdraw": DEPOSIT_GUARDS,
    "write-skew": (*DEPOSIT_GUARDS, "unsafe"),
    "transfer": TRANSFER_POLICIES,
    "audit": TRANSFER_POLICIES,
}
#: What cannot be explored on the database, and why: said as a usage error, never skipped silently.
NOT_EXPLORED = {
    "backoff": "backoff's waits end at a lock_timeout that PostgreSQL counts in real time (and its NOWAIT "
    "refusals retry without end under none), so no search over it can be a replay",
    "checkout": "a checkout on the postgres store waits for its advisory slots by polling them on a clock "
    "(advisory-semaphore) and counts what is in flight in shared advisory locks, which the explorer does not "
    "step; checkout is explored in memory under unsafe, lock, rlock and semaphore",
    "batch": "the batch re-enters a Python guard; the database guards hold a row or an advisory lock per "
    "transaction, which a batch takes once",
    "advisory-semaphore": "advisory-semaphore is a checkout guard, and checkouts are not explored on the database",
}


def on_database(config: Config, scenario: str, guard: str) -> bool:
    """Whether `scenario` under `guard` runs on the database: the postgres store's guards (and, there, its
    transfer policies, and write skew under `unsafe`, whose lesson on that store is read committed's)."""
    if config.store != "postgres":
        return guard in DEPOSIT_GUARDS or guard == "advisory-semaphore"  # refused: see `explorer.explore`
    if scenario in ("transfer", "audit"):
        return True
    return guard in DATABASE_GUARDS_OF.get(scenario, DEPOSIT_GUARDS) or guard == "advisory-semaphore"


def check_database(scenario: str, guard: str, threads: int | None) -> int:
    """The number of threads, or `InvalidExplore` naming why `scenario` under `guard` cannot run on the database."""
    why = NOT_EXPLORED.get(guard) or NOT_EXPLORED.get(scenario)
    if why is not None:
        what = f"{scenario} under {guard}"
        raise InvalidExplore(f"guard: {what} is not explored on the database: {why}", "guard")
    if scenario not in DATABASE_GUARDS_OF:
        known = ", ".join(DATABASE_GUARDS_OF)
        raise InvalidExplore(f"scenario: the database is explored for {known} only, not {scenario}", "scenario")
    if guard not in DATABASE_GUARDS_OF[scenario]:
        known = ", ".join(DATABASE_GUARDS_OF[scenario])
        raise InvalidExplore(f"guard: {scenario} on the database runs under {known}, not {guard!r}", "guard")
    n = 2 if threads is None else threads
    if not 2 <= n <= MOST[scenario]:
        span = "2" if MOST[scenario] == 2 else f"2 to {MOST[scenario]}"
        raise InvalidExplore(f"threads: {scenario} runs {span} threads, not {n}", "threads")
    return n


def database_guards(scenario: str) -> tuple[str, ...]:
    """The guards `--guard all` lists on the database for `scenario` (none where it is not explored there)."""
    return DATABASE_GUARDS_OF.get(scenario, ())
