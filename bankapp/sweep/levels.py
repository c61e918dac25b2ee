"""What a sweep is asked to do, from its flags, each refused by name when wrong.

`--users 1,2,4` (closed loop, Locust users), `--rate 50,100` (open loop,
requests per second), `--keys spread|hot|zipf:S`, `--race-window-ms 0,1,5`.
A bad value raises `LevelError` naming the flag, which the command turns
into a usage error (exit 2).

Keys make contention a dial: `spread` picks among 16 accounts evenly, `hot`
sends every deposit to one account (every transfer between the same two),
`zipf:S` picks account i (1-based) with weight 1/i**S: with S = 1.2 the
first account takes about a third of the requests. Locust's users pick
uniformly from `--accounts`, so a skew is given to them as a list in which
each account appears in proportion to its weight (rounded, at least once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SPREAD_ACCOUNTS = 16
#: Entries of a skewed account list: enough to keep 1/i**S to within a few percent for the first accounts.
ZIPF_ENTRIES = 400
DEFAULT_USERS = (1, 2, 4, 8, 16, 32, 64)


class LevelError(ValueError):
    """A flag's value that cannot be swept; the message names the flag."""


def account(index: int) -> str:
    return f"acc-{index:02d}"


def numbers(flag: str, text: str, *, whole: bool, low: float, high: float) -> list[float]:
    """Comma-separated positive numbers within [low, high], distinct, in the order given."""
    parts = [part.strip() for part in str(text).split(",")]
    if not parts or any(not part for part in parts):
        raise LevelError(f"{flag}: {text!r} is not a comma-separated list of numbers (e.g. 1,2,4,8)")
    values: list[float] = []
    for part in parts:
        try:
            value = int(part) if whole else float(part)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise LevelError(f"{flag}: {part!r} is not {kind}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise LevelError(f"{flag}: {part} is out of range; each value must be between {low:g} and {high:g}")
        if value in values:
            raise LevelError(f"{flag}: {part} is given twice")
        values.append(value)
    return values


def parse_users(text: str) -> list[int]:
    return [int(value) for value in numbers("--users", text, whole=True, low=1, high=1000)]


def parse_rates(text: str) -> list[float]:
    return numbers("--rate", text, whole=False, low=0.1, high=100_000)


def parse_race_windows(text: str) -> list[float]:
    return numbers("--race-window-ms", text, whole=False, low=0, high=10_000)


@dataclass(frozen=True)
class Keys:
    """How requests pick their accounts: `name` as given, `weights` per account (in order, summing to 1)."""

    name: str
    weights: tuple[float, ...]

    @property
    def accounts(self) -> list[str]:
        return [account(index) for index in range(len(self.weights))]

    def locust_accounts(self) -> str:
        """The `--accounts` list for Locust: each account repeated in proportion to its weight."""
        if len(set(self.weights)) == 1:
            return ",".join(self.accounts)
        counts = [max(1, round(weight * ZIPF_ENTRIES)) for weight in self.weights]
        return ",".join(name for name, count in zip(self.accounts, counts, strict=True) for _ in range(count))

    def hottest_share(self) -> float:
        return max(self.weights)


def parse_keys(text: str, scenario: str = "deposit") -> Keys:
    """`spread`, `hot` or `zipf:S` (S > 0); a transfer needs two accounts, so `hot` is a pair for it."""
    text = str(text).strip()
    if text == "spread":
        return Keys("spread", (1 / SPREAD_ACCOUNTS,) * SPREAD_ACCOUNTS)
    if text == "hot":
        return Keys("hot", (0.5, 0.5) if scenario == "transfer" else (1.0,))
    if text.startswith("zipf:"):
        if scenario == "transfer":
            raise LevelError("--keys: zipf is for deposits (a transfer needs two accounts); use spread or hot")
        try:
            exponent = float(text.removeprefix("zipf:"))
        except ValueError:
            exponent = math.nan
        if not math.isfinite(exponent) or not 0 < exponent <= 10:
            raise LevelError(f"--keys: {text!r}: the zipf exponent S must be a number above 0 and at most 10")
        raw = [1 / rank**exponent for rank in range(1, SPREAD_ACCOUNTS + 1)]
        return Keys(f"zipf:{exponent:g}", tuple(weight / sum(raw) for weight in raw))
    raise LevelError(f"--keys: {text!r} is not spread, hot or zipf:S (e.g. zipf:1.2)")
