"""The verdict: what the clients saw, checked against what the server holds.

The checks are those of Jepsen's counter and bank checkers, one module per
scenario:

- `deposits` (counter): per account, the balance change lies between the
  acknowledged and the attempted deposits;
- `checkout`: peak in flight against capacity, admitted, rejected, oversold;
- `transfers` (bank): the total is conserved, no balance is negative, audits
  never read a wrong total, no transfer fell victim to a deadlock;
- `races`: who erased whom, as the server's `/debug/races` names it, with
  one example in words.

Scenarios that run together write the same balances, so `money` accounts
for every account at once and blames each gap (and each wrong audit read)
on the scenario whose settings could have made it: every anomaly is
reported once, against its cause, whichever user classes ran together.

Where the clients' counts and the server's own counters (`/stats`) cannot
both be right, the verdict says so plainly. A section of `/stats` the server
does not have is noted, and the check falls back to what the clients saw.

Pure functions of plain data, so it can be tested on hand-made numbers:
`judge(counts, before, after)` returns the JSON of the verdict, `render()`
the block a person reads.
"""

from __future__ import annotations

from .checkout import judge_checkout
from .deposits import judge_deposits
from .model import Run, Snapshot, Verdict
from .money import count_money
from .races import judge_races
from .render import render
from .transfers import judge_transfers

__all__ = ["judge", "render"]


def judge(counts: dict[str, int], before: Snapshot, after: Snapshot, unit_amount: int | None = None) -> dict:
    """The verdict of one run as JSON-ready data.

    `counts` are the clients' merged counters (see `tally`); `before` and
    `after` what the server showed at the start and at the end;
    `unit_amount`, when every deposit was of the same amount, lets lost
    cents be told as a number of deposits.
    """
    run = Run(counts, before, after, unit_amount)
    verdict = Verdict(settings=run.settings)
    money = count_money(run) if run.ran_deposits or run.ran_transfers or run.ran_audits else None
    if run.ran_deposits:
        verdict.sections["deposits"] = judge_deposits(run, money, verdict)
    if run.ran_checkout:
        verdict.sections["checkout"] = judge_checkout(run, verdict)
    if run.ran_transfers or run.ran_audits:
        verdict.sections["transfers"] = judge_transfers(run, money, verdict)
    if run.ran_deposits or run.ran_transfers:
        races = judge_races(run, verdict)
        if races is not None:
            verdict.sections["races"] = races
    if not verdict.sections:
        verdict.note("no scenario sent a request: nothing to judge")
    return verdict.to_json()
