"""Who erased whom: the server's own account of its lost updates (`/debug/races`), and one example in words.

The balances say how much was lost; `/debug/races` says which write erased
which. The verdict quotes one erasure of the run as the server words it
(the newest that erased a single write, the easiest to read), and the
cents the server named against its own `lost_updates`: at rest they are the
same number, and a difference is noted.
"""

from __future__ import annotations

from .model import Run, Verdict


def newest_first(races: dict, before: dict | None) -> list[dict]:
    """The erasures listed after the run that were not listed before it."""
    seen = max((event["id"] for event in (before or {}).get("races") or []), default=0)
    return [event for event in races.get("races") or [] if event["id"] > seen]


def example(events: list[dict]) -> dict | None:
    """The newest erasure of a single write, else the newest erasure."""
    simple = [event for event in events if len(event["erased"]) == 1 and not event["revived"] and event["complete"]]
    return next(iter(simple or events), None)


def judge_races(run: Run, verdict: Verdict) -> dict | None:
    races, before = run.after.get("races"), run.before.get("races")
    if not isinstance(races, dict):
        verdict.note("the server has no /debug/races: nobody named who erased whom")
        return None
    before = before if isinstance(before, dict) else {}
    named = races["lost_updates"] - before.get("lost_updates", 0)
    found = example(newest_first(races, before))
    section = {
        "erasures": races["erasures"] - before.get("erasures", 0),
        "lost_updates": named,
        "server_lost_updates": run.growth("deposits", "lost_updates"),
        "example": found and found["sentence"],
        "example_race": found,
    }
    counted = section["server_lost_updates"]
    if counted is not None and counted != named:
        verdict.note(
            f"the server's /debug/races names {named:,} lost cents, its /stats counts {counted:,}: a write was "
            "still in flight when they were read, or the lab was reset during the run"
        )
    return section
