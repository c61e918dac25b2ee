"""What the clients saw: counters every user bumps, merged across processes.

Every counter is a plain int under a string key `section/subject/field`
(`deposit/acc-00/ok_amount`; the names are in `keys`), so a worker's counts
travel to the master inside Locust's own report (msgpack) and merge by
addition.

A request is counted as *sent* before it goes out, then as *ok* or *failed*
when a definite answer arrives. One that never gets a definite answer (a
timeout, a user stopped mid-request, a 500) stays in between: like Jepsen's
"info" operations, it may or may not have taken effect, so the verdict allows
for both.

A deposit retried after a timeout is still one deposit: it is counted once
as sent, and `settle` says how its tries ended as a whole.

Example::

    tally = Tally()
    tally.add(keys.DEPOSIT, "acc-00", keys.SENT_AMOUNT, 5)
    tally.add(keys.DEPOSIT, "acc-00", keys.OK_AMOUNT, 5)
    master.merge(tally.drain())
"""

from __future__ import annotations

from collections import Counter

from .keys import FAILED, OK

SEP = "/"


class Tally:
    """Additive counters; greenlets of one process share one without locks (no I/O inside)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, section: str, subject: str, field: str, by: int = 1) -> None:
        self.counts[SEP.join((section, subject, field))] += by

    def drain(self) -> dict[str, int]:
        """Everything counted since the last drain; the tally starts again from zero."""
        counts = {key: value for key, value in self.counts.items() if value}
        self.counts.clear()
        return counts

    def merge(self, counts: dict[str, int] | None) -> None:
        for key, value in (counts or {}).items():
            self.counts[key] += int(value)

    def snapshot(self) -> dict[str, int]:
        return {key: value for key, value in self.counts.items() if value}


def by_subject(counts: dict[str, int], section: str, field: str) -> dict[str, int]:
    """`{subject: value}` of one field of one section."""
    found: dict[str, int] = {}
    for key, value in counts.items():
        key_section, subject, key_field = key.split(SEP, 2)
        if key_section == section and key_field == field:
            found[subject] = found.get(subject, 0) + value
    return found


def total(counts: dict[str, int], section: str, field: str) -> int:
    return sum(by_subject(counts, section, field).values())


#: How one try ended: `OK` (a 2xx), a refusal that promises nothing was applied, or no definite answer.
REFUSED, UNANSWERED = "refused", "unanswered"
#: A logical operation whose tries leave it open: it may or may not have been applied.
MAYBE = "maybe"


def settle(tries: list[str], keyed: bool) -> str:
    """How a logical operation ended, from its tries in order: `OK`, `FAILED`, or `MAYBE` applied.

    One acknowledged try makes it `ok`. A refusal after tries that got no
    answer is definite only with an `Idempotency-Key`: the server then ran
    the key once, so the refusal is the whole story; without a key, an
    unanswered try may have been applied on its own before the refusal.

    Example::

        settle([UNANSWERED, REFUSED], keyed=True)   # FAILED
        settle([UNANSWERED, REFUSED], keyed=False)  # MAYBE
    """
    if OK in tries:
        return OK
    if tries and tries[-1] == REFUSED and (keyed or UNANSWERED not in tries):
        return FAILED
    return MAYBE
