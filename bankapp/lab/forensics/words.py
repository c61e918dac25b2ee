"""An erasure in words, for a person: who read what, who wrote over whom, and which cents are gone.

Example::

    deposit 3f2a9c1b on Thread-7 read 100,412 (v312) and wrote 100,413 over v313, written by
    deposit 9c1b07aa on Thread-3 0.8 ms earlier: its 1 cent is gone.

Works on the JSON of an erasure (`Erasure.to_json`), so the memory store and
the postgres store, whose erasures are rows, say it the same way.
"""

from __future__ import annotations

from typing import Any

#: Request ids up to this long are quoted whole; longer ones by their first `SHORT_ID - 4` characters, as git
#: quotes a commit (and in ASCII, so a terminal reading the JSON shows it as it is).
SHORT_ID = 12


def cents(n: int) -> str:
    return "1 cent" if abs(n) == 1 else f"{n:,} cents"


def short(request_id: str | None) -> str:
    if request_id is None or len(request_id) <= SHORT_ID:
        return request_id or ""
    return request_id[: SHORT_ID - 4]


def name(write: dict[str, Any]) -> str:
    """`deposit 3f2a9c1b`: what the write was part of, and its request."""
    return " ".join(part for part in (write["operation"] or "write", short(write["request_id"])) if part)


def place(write: dict[str, Any], beside: dict[str, Any]) -> str:
    """`on Thread-3`, with the pid when it is not the other write's."""
    pid = f" of pid {write['pid']}" if write["pid"] != beside["pid"] else ""
    return f"on {write['thread']}{pid}"


def elapsed(seconds: float) -> str:
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.1f} ms"
    return f"{ms:,.0f} ms" if ms < 1000 else f"{seconds:,.1f} s"


def loss(delta: int) -> str:
    """What erasing one write of `delta` took away."""
    if delta >= 0:
        return f"its {cents(delta)} {'is' if delta == 1 else 'are'} gone"
    return f"its debit of {cents(-delta)} is undone"


def net(n: int) -> str:
    """What an erasure took away in all."""
    if n > 0:
        return f"{cents(n)} {'is' if n == 1 else 'are'} gone"
    return f"the balance is {cents(-n)} too high" if n else "nothing is lost in all"


def sentence(event: dict[str, Any]) -> str:
    """The erasure `event` (as `/debug/races` lists it) in one sentence."""
    eraser, erased, revived = event["eraser"], event["erased"], event["revived"]
    said = (
        f"{name(eraser)} {place(eraser, eraser)} read {eraser['read_balance']:,} (v{eraser['read_version']}) and "
        f"wrote {eraser['balance']:,} over v{event['overwrote']['version']}"
    )
    if erased:
        head = erased[0]
        ago = elapsed(eraser["wrote_at"] - head["wrote_at"])
        said += f", written by {name(head)} {place(head, eraser)} {ago} earlier"
    if len(erased) == 1 and not revived and event["complete"]:
        return f"{said}: {loss(erased[0]['delta'])}."
    if len(erased) > 1:
        others = ", ".join(name(write) for write in erased[1:4]) + (", ..." if len(erased) > 4 else "")
        more = f"{len(erased) - 1} more write{'s' if len(erased) > 2 else ''}"
        said += f", and {more} since v{eraser['read_version']} ({others})"
    for write in revived:
        said += f"; it brought back {name(write)} ({cents(write['delta'])}), which an earlier write had erased"
    said += f": {net(event['cents'])}"
    if not event["complete"]:
        said += " (the writes in between are no longer all remembered: the cents are exact, the names incomplete)"
    return said + "."
