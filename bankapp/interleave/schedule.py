"""Steps and schedules: what a thread pauses at, and the order a schedule names.

A *step* is one thing a thread does to shared state: `read` or `write` a
balance, `acquire` or `release` a lock. Calls of one kind made back to back
on different things are one step: the audit's `acquire` takes every
account's lock, a deposit under `lock` takes its guard and then the
account's lock in one `acquire`. Each thread's steps are what the domain
code really calls, in its order (see `replay.rehearse`).

A *schedule* names steps as `THREAD.STEP`, e.g. `a.read b.read a.write
b.write`. A thread that does a step twice (a withdrawal reads twice) is
named twice: the first `a.read` is its first read, the second its second.
Every read and write of every thread is named exactly once, in that
thread's own order. Acquires and releases are named too, or, for a thread,
left out altogether: then an acquire runs with the step after it and a
release with the step before it, and the guard shows only when it makes a
thread wait.

A schedule that breaks a rule is refused by `InvalidSchedule`, which names
the bad step; nothing has run.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

#: The kinds of step, and how a sentence says each ("a reads twice").
KINDS = {"read": "reads", "write": "writes", "acquire": "acquires", "release": "releases"}
LOCK_KINDS = frozenset({"acquire", "release"})
THREAD_NAMES = "abc"
#: A schedule longer than this is refused: no scenario has half as many steps.
MAX_ENTRIES = 200
TOKEN = re.compile(r"^([a-z][a-z0-9_-]*)\.([a-z][a-z0-9_-]*)$")


class InvalidSchedule(ValueError):
    """The schedule cannot be run as written; `step` is the entry at fault (None: the schedule as a whole)."""

    def __init__(self, message: str, step: str | None = None):
        super().__init__(message)
        self.step = step


@dataclass
class Step:
    """One step of a thread: its kind and what each of its calls touches, in order."""

    kind: str
    targets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """One entry of a schedule: thread `thread` may do its named step number `index` (0-based)."""

    thread: str
    kind: str
    index: int

    @property
    def label(self) -> str:
        return f"{self.thread}.{self.kind}"


def group(calls: list[tuple[str, str]]) -> list[Step]:
    """Calls (kind, target) as steps: calls of one kind on different targets, back to back, are one step."""
    steps: list[Step] = []
    for kind, target in calls:
        if steps and steps[-1].kind == kind and target not in steps[-1].targets:
            steps[-1].targets.append(target)
        else:
            steps.append(Step(kind, [target]))
    return steps


def tokens(text: str) -> list[str]:
    """The entries of a schedule as written: words split on spaces or commas."""
    return [word for word in re.split(r"[\s,]+", text.strip()) if word]


def parse(text: str, steps: dict[str, list[Step]], least: int, most: int) -> tuple[list[Entry], dict[str, bool]]:
    """Check `text` against each thread's `steps`; the entries, and for each thread whether its locks are named.

    The schedule picks how many threads run, `least` to `most`, always
    from `a` on; `steps` holds the steps of as many as it names (see
    `thread_count`).
    """
    named = _words(text)
    threads = _threads(named, list(THREAD_NAMES[:most]), least)
    missing = [thread for thread in threads if thread not in steps]
    if missing:
        raise ValueError(f"no steps for thread {missing[0]}: count the threads with thread_count() first")
    locks_named = {thread: any(kind in LOCK_KINDS for _, t, kind in named if t == thread) for thread in threads}
    for thread in threads:
        expected = [s.kind for s in steps[thread] if locks_named[thread] or s.kind not in LOCK_KINDS]
        given = [(word, kind) for word, t, kind in named if t == thread]
        _check_thread(thread, expected, given, steps[thread], locks_named[thread])
    counts: Counter[str] = Counter()
    entries = []
    for _, thread, kind in named:
        entries.append(Entry(thread, kind, counts[thread]))
        counts[thread] += 1
    return entries, locks_named


def thread_count(text: str, least: int, most: int) -> int:
    """How many threads a schedule names (within `least` .. `most`), before it is checked: the threads'
    steps depend on it (a ring of transfers closes on its last thread)."""
    try:
        named = _words(text)
    except InvalidSchedule:
        return least
    used = {thread for _, thread, _ in named if thread in THREAD_NAMES[:most]}
    return min(most, max(least, len(used)))


def _words(text: str) -> list[tuple[str, str, str]]:
    """Each entry as (word, thread, step), or the refusal of the first that is not THREAD.STEP."""
    words = tokens(text)
    if not words:
        raise InvalidSchedule(
            'the schedule is empty: name each step as THREAD.STEP, for example "a.read b.read a.write b.write"'
        )
    if len(words) > MAX_ENTRIES:
        raise InvalidSchedule(f"the schedule names {len(words)} steps; at most {MAX_ENTRIES} are allowed")
    named = []
    for word in words:
        match = TOKEN.match(word)
        if not match:
            raise InvalidSchedule(f"{word!r} is not THREAD.STEP (for example a.read)", word)
        named.append((word, match.group(1), match.group(2)))
    return named


def _threads(named: list[tuple[str, str, str]], known: list[str], least: int) -> list[str]:
    """The threads the schedule runs: known ones, `a` first and none skipped, at least `least` of them."""
    for word, thread, _ in named:
        if thread not in known:
            raise InvalidSchedule(f"{word}: there is no thread {thread}; this scenario runs {_spell(known)}", word)
    used = sorted({thread for _, thread, _ in named}, key=known.index)
    if used != known[: len(used)]:
        missing = next(t for t in known if t not in used)
        raise InvalidSchedule(
            f"thread {missing} is missing: the schedule names {_spell(used)}; threads start at a", missing
        )
    if len(used) < least:
        nxt = known[len(used)]
        raise InvalidSchedule(
            f"thread {nxt} is missing: this scenario needs at least {least} threads ({_spell(known[:least])}); "
            f"the schedule names {_spell(used)} only",
            nxt,
        )
    return used


def _check_thread(
    thread: str, expected: list[str], given: list[tuple[str, str]], steps: list[Step], locks_named: bool
) -> None:
    """One thread's entries: known steps, each as often as the thread does it, in its own order."""
    have = Counter(kind for _, kind in given)
    want = Counter(expected)
    order = " ".join(f"{thread}.{kind}" for kind in expected)
    for word, kind in given:
        if kind not in KINDS or not any(s.kind == kind for s in steps):
            kinds = sorted({s.kind for s in steps}, key=list(KINDS).index)
            raise InvalidSchedule(f"{word}: thread {thread} has no step {kind}; its steps are {_spell(kinds)}", word)
    lock_kinds = {s.kind for s in steps} & LOCK_KINDS
    if locks_named and have.keys() & LOCK_KINDS != lock_kinds:
        named = sorted(have.keys() & LOCK_KINDS)[0]
        other = sorted(lock_kinds - have.keys())[0]
        raise InvalidSchedule(
            f"{thread}.{named} is named but {thread}.{other} is not: name all of a thread's acquires and "
            f"releases, or none of them; {thread}'s steps in order: {order}",
            f"{thread}.{named}",
        )
    for word, kind in given:
        if have[kind] > want[kind]:
            raise InvalidSchedule(
                f"{word} is named {_times(have[kind])}, but thread {thread} {KINDS[kind]} {_times(want[kind])}; "
                f"its steps in order: {order}",
                word,
            )
    for kind in expected:
        if have[kind] < want[kind]:
            named = f"names it {_times(have[kind])}" if have[kind] else "does not name it"
            raise InvalidSchedule(
                f"{thread}.{kind} is missing: thread {thread} {KINDS[kind]} {_times(want[kind])} and the schedule "
                f"{named}; its steps in order: {order}",
                f"{thread}.{kind}",
            )
    for position, (word, kind) in enumerate(given):
        if kind != expected[position]:
            raise InvalidSchedule(
                f"{word} comes too early: thread {thread} does {thread}.{expected[position]} first; "
                f"a thread's steps run in its own order: {order}",
                word,
            )


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _spell(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names) or "nothing"
    return ", ".join(names[:-1]) + " and " + names[-1]
