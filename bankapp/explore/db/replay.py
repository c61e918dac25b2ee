"""One schedule in `bankapp interleave`'s notation, replayed on the postgres store's database.

`replay_database(config, "transfer", "naive", "a.read b.read a.read b.read")`
runs the scenario's sessions on a scratch schema of the server's database
(as `database.explore_database` runs each schedule), taking the statements
in the order the schedule names them: `a.read` is thread a's next statement,
which must be a read. A session that waits for a lock in the database is
shown waiting (`pg_blocking_pids`), and goes on where the holder lets go.
A schedule the sessions cannot follow (a step named for a thread that waits,
has ended, or does something else next; steps left unnamed) is refused by
`InvalidSchedule` naming the step; nothing of the server's bank changed.
The result has the shape of `bankapp interleave`'s, so it prints the same,
and `explorer.replayed_outcome` judges it as the explorer judged the schedule.
"""

from __future__ import annotations

from typing import Any

from ...interleave.scenarios import SCENARIOS
from ...interleave.schedule import TOKEN, InvalidSchedule, thread_count, tokens
from ...settings import Config
from ..database import OPERATIONS, final_and_answers, run_schedule, scratch_database
from .rules import MOST, check_database
from .session import DatabaseExecution

#: The kinds of statement a database schedule names.
KINDS = ("read", "write", "acquire")


def replay_database(config: Config, scenario: str, guard: str, schedule: str | None = None) -> dict:
    """Run `scenario` under the database guard `guard` in the order of `schedule` (None: each thread in turn)."""
    if scenario not in OPERATIONS:
        check_database(scenario, guard, None)  # says why it is not run on the database
    words = _words(schedule, MOST.get(scenario, 2)) if schedule is not None else None
    n = 2 if words is None else thread_count(schedule or "", 2, MOST[scenario])
    n = check_database(scenario, guard, n)
    with scratch_database(config, scenario, guard) as (lab, monitor):
        chooser = _Follow(words) if words is not None else _round_robin
        execution = run_schedule(lab, scenario, n, chooser, monitor, watch=getattr(chooser, "watch", None))
        if isinstance(chooser, _Follow):
            chooser.finished(execution)
        final, answers = final_and_answers(lab, execution, scenario)
    return _result(config, scenario, guard, n, execution, final, answers, schedule)


def _words(schedule: str, most: int) -> list[tuple[str, str]]:
    named = []
    for word in tokens(schedule):
        match = TOKEN.match(word)
        if not match:
            raise InvalidSchedule(f"{word!r} is not THREAD.STEP (for example a.read)", word)
        thread, kind = match.groups()
        if thread not in "abc"[:most]:
            raise InvalidSchedule(f"{word}: there is no thread {thread}; this scenario runs a to {'abc'[most - 1]}")
        if kind not in KINDS:
            raise InvalidSchedule(f"{word}: on the database a step is a statement: read, write or acquire", word)
        named.append((thread, kind))
    if not named:
        raise InvalidSchedule('the schedule is empty: name each step as THREAD.STEP, e.g. "a.read b.read"')
    return named


def _round_robin(enabled: list[str], moves: list) -> str:
    """Each thread in turn: the one after the last to move, of those that can."""
    last = moves[-1].thread if moves else None
    later = [name for name in enabled if last is None or name > last]
    return (later or enabled)[0]


class _Follow:
    """The schedule's choices, each checked against what its thread does next."""

    def __init__(self, words: list[tuple[str, str]]):
        self.words = words
        self.at = 0
        self.execution: DatabaseExecution | None = None

    def watch(self, execution: DatabaseExecution) -> None:
        self.execution = execution

    def __call__(self, enabled: list[str], moves: list) -> str:
        execution = self.execution
        assert execution is not None, "run_schedule hands the execution over before its first choice"
        if self.at == len(self.words):
            left = ", ".join(execution.sessions[name].label for name in enabled)
            raise InvalidSchedule(f"the schedule ends, but {left} still to run: name every statement", left)
        thread, kind = self.words[self.at]
        word = f"{thread}.{kind}"
        session = execution.sessions[thread]
        if thread not in enabled:
            if session.state == "done":
                raise InvalidSchedule(f"{word} (step {self.at + 1}): thread {thread} has already ended", word)
            holders = ", ".join(execution.holders(session)) or "another session"
            raise InvalidSchedule(
                f"{word} (step {self.at + 1}): {thread} waits in the database for a lock {holders} holds; "
                f"it goes on only when {holders} lets go",
                word,
            )
        if session.label != word:
            raise InvalidSchedule(
                f"{word} (step {self.at + 1}) comes too early: thread {thread}'s next statement is {session.label}",
                word,
            )
        self.at += 1
        return thread

    def finished(self, execution: DatabaseExecution) -> None:
        if self.at < len(self.words):
            thread, kind = self.words[self.at]
            word = f"{thread}.{kind}"
            ended = "every session waits for another (a deadlock)" if execution.end else "every thread has ended"
            raise InvalidSchedule(f"{word} (step {self.at + 1}): {ended} before it", word)


def _result(config, scenario, guard, n, execution: DatabaseExecution, final, answers, schedule) -> dict[str, Any]:
    plan = SCENARIOS[scenario]
    jobs = plan.jobs(config, n)
    for answer, job in zip(answers, jobs, strict=False):
        if answer["ok"]:
            try:
                answer["answer"] = job.answer(answer["result"])
            except (TypeError, KeyError, IndexError):
                answer["answer"] = str(answer["result"])
    ran = [move.label for move in execution.moves]
    events: list[dict] = []
    for event in execution.events:
        if event["event"] == "statement":
            events.append({"event": "step", "thread": event["thread"], "step": event["step"]})
        events.append(event)
    findings = []
    if execution.end:
        waits = "; ".join(f"{s['thread']} waits for the {s['waits_for']} ({', '.join(s['held_by'])} holds it)"
                          for s in execution.stuck)  # fmt: skip
        findings.append(
            f"{execution.end}: {waits}. Every session waits for another, seen in pg_blocking_pids; the replay "
            "cancels them (PostgreSQL's own detector would abort one after deadlock_timeout)"
        )
        events.append({"event": "stuck", "stuck": [{**s, "holders": s["held_by"]} for s in execution.stuck]})
    return {
        "scenario": scenario,
        "shows": plan.shows,
        "setting": plan.setting,
        "guard": guard,
        "schedule": schedule if schedule is not None else " ".join(ran),
        "scratch": True,
        "store": "postgres",
        "end": execution.end,
        "settings": {"store": "postgres", "accounts": config.accounts, "initial_balance": config.initial_balance},
        "threads": [
            {
                "name": name,
                "does": job.does,
                "steps": [move.label for move in execution.moves if move.thread == name],
                "locks_named": True,
            }
            for name, job in zip("abc", jobs, strict=False)
        ],
        "events": events,
        "ran": ran,
        "answers": answers,
        "final": final,
        "findings": findings + plan.findings(final, answers),
    }
