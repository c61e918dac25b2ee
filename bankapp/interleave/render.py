"""A replay's result as the lines `bankapp interleave` prints.

One line per step as it ran: the step, then what it did and saw, in
order (`read acc-00 = 100000`, `took the lock guard of acc-00`). A step
that must wait shows as `blocks`, naming who holds the lock, and shows
again where the thread goes on. Nothing that changes from run to run
is printed: no thread ids, no times but the settings' own.
"""

from __future__ import annotations

from typing import Any

WIDTH = 10  # the step column: "a.release" and a space


def render(result: dict[str, Any]) -> list[str]:
    setting = "deposit_guard" if result["setting"] == "deposit_guard" else "transfer_policy"
    shown = " ".join(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
                     for name, value in result["settings"].items())  # fmt: skip
    lines = [
        f"{result['scenario']} with {setting}={result['guard']}: {result['shows']}",
        f"  in a scratch bank of its own ({shown}): the server's balances and counters are untouched",
    ]
    for thread in result["threads"]:
        steps = " ".join(thread["steps"])
        implicit = (
            ""
            if thread["locks_named"] or not _takes_locks(result, thread["name"])
            else "; acquire and release run with them"
        )
        lines.append(f"  {thread['name']}: {thread['does']}  (steps: {steps}{implicit})")
    lines += [f"schedule: {result['schedule']}", ""]
    lines += _steps(result["events"])
    ran = " ".join(result["ran"])
    if ran and ran != result["schedule"]:
        lines += ["", f"ran:      {ran}"]
    lines.append("")
    for answer in result["answers"]:
        lines.append(f"{answer['thread']} answers: {_answer(answer)}")
    final = result["final"]
    balances = ", ".join(f"{account} = {balance}" for account, balance in final["balances"].items())
    lines.append(f"final:    {balances}")
    lines += [f"  {finding}" for finding in result["findings"]]
    return lines


def _takes_locks(result: dict, thread: str) -> bool:
    return any(e.get("thread") == thread and e["event"] in ("took", "blocks", "released") for e in result["events"])


def _steps(events: list[dict]) -> list[str]:
    """Events as lines: a new line where a step is released, and where another thread's events begin."""
    lines: list[tuple[str, list[dict]]] = []
    current: tuple[str | None, str | None] = (None, None)
    for event in events:
        kind = event["event"]
        if kind in ("stuck", "broken", "not run"):
            lines.append(("", [event]))
            current = (None, None)
            continue
        where = (event["thread"], event["step"])
        if kind == "step" or where != current or not lines:
            lines.append((event["step"], []))
            current = where
        elif kind in ("gave up", "timed out"):  # giving up, and then undoing, each on a line of its own
            lines.append(("", []))
        if kind != "step" and (kind != "done" or _refused_by_the_code(event, events)):
            lines[-1][1].append(event)
        if kind in ("gave up", "timed out"):
            lines.append(("", []))
    return [f"  {label:<{WIDTH}}{_describe(found)}".rstrip() for label, found in lines if found or label]


def _refused_by_the_code(done: dict, events: list[dict]) -> bool:
    """A thread refused by the domain (a check that failed), not by a lock it gave up on: said where it ends."""
    gave_up = any(e.get("thread") == done["thread"] and e["event"] in ("gave up", "timed out") for e in events)
    return "refused" in done and not gave_up


def _describe(events: list[dict]) -> str:
    """One line's events in words; calls of one kind in a row are said once (the audit takes 16 locks)."""
    runs: list[list[dict]] = []
    for event in events:
        if runs and event["event"] in FOLDED and _run_key(runs[-1][0]) == _run_key(event):
            runs[-1].append(event)
        else:
            runs.append([event])
    return "; ".join(FOLDED[run[0]["event"]](run) if run[0]["event"] in FOLDED else _plain(run[0]) for run in runs)


def _run_key(event: dict) -> tuple:
    return (event["event"], event.get("holds", 1) > 1, event.get("after_plan"))


def _took(run: list[dict]) -> str:
    first = run[0]
    again = f" (holds it {first['holds']} times: reentrant)" if first["holds"] > 1 else ""
    return f"{'goes on: ' if first.get('waited') else ''}took {_locks([e['target'] for e in run])}{again}"


def _released(run: list[dict]) -> str:
    return f"released {_locks([e['target'] for e in run])}"


def _read(run: list[dict]) -> str:
    return f"read {_values(run)}"


def _wrote(run: list[dict]) -> str:
    return f"{'put back' if run[0].get('after_plan') else 'wrote'} {_values(run)}"


FOLDED = {"took": _took, "released": _released, "read": _read, "write": _wrote}


def _locks(targets: list[str]) -> str:
    """`lock guard of acc-00`, `account lock of acc-00` -> `the lock guard of acc-00 and the account lock of
    acc-00`; many locks of one kind in a row -> `the 16 account locks, acc-00 .. acc-15`."""
    groups: list[tuple[str, list[str]]] = []
    for target in targets:
        kind, _, account = target.partition(" of ")
        if groups and groups[-1][0] == kind:
            groups[-1][1].append(account)
        else:
            groups.append((kind, [account]))
    said = []
    for kind, accounts in groups:
        if len(accounts) == 1:
            said.append(f"the {kind} of {accounts[0]}")
        elif len(accounts) == 2:
            said.append(f"the {kind}s of {accounts[0]} and {accounts[1]}")
        else:
            said.append(f"the {len(accounts)} {kind}s, {accounts[0]} .. {accounts[-1]}")
    return " and ".join(said)


def _values(run: list[dict]) -> str:
    """`acc-00 = 99995, acc-01 .. acc-15 = 100000`: three or more accounts in a row with one value are folded."""
    said: list[str] = []
    i = 0
    while i < len(run):
        j = i
        while j + 1 < len(run) and run[j + 1]["value"] == run[i]["value"]:
            j += 1
        if j - i >= 2:
            said.append(f"{run[i]['target']} .. {run[j]['target']} = {run[i]['value']}")
        else:
            said += [f"{e['target']} = {e['value']}" for e in run[i : j + 1]]
        i = j + 1
    return ", ".join(said)


def _plain(event: dict) -> str:
    kind, thread = event["event"], event.get("thread")
    target = event.get("target")
    if kind == "done":
        return f"{thread} is refused: {event['refused'].replace('-', ' ')}"
    if kind == "blocks":
        holders = event["holders"]
        if holders == [thread]:
            return f"blocks: {thread} already holds the {target}, which is not reentrant: {thread} waits for itself"
        return f"blocks: {_spell(holders)} {'holds' if len(holders) == 1 else 'hold'} the {target}"
    if kind == "refused":
        return f"cannot take the {target} at once ({_spell(event['holders'])} holds it) and may not wait"
    if kind == "timed out":
        return f"gives up: waited {event['timeout_ms']:g} ms for the {target} (lock_timeout_ms)"
    if kind == "gave up":
        return f"gives up: {_error(event)}"
    if kind == "not run":
        return f"not run: {' '.join(event['steps'])} ({thread} had already ended)"
    if kind == "stuck":
        waits = "; ".join(
            f"{s['thread']} waits for the {s['waits_for']} ({_spell(s['holders'])} holds it)" for s in event["stuck"]
        )
        return f"stuck: {waits}; nobody may give up (lock_timeout_ms none)"
    if kind == "statement":  # a replay on the postgres store's database: a step is a SQL statement
        return f"{event['does']}s {event['target']}{' (FOR UPDATE: locks it)' if event['locks'] else ''}"
    if kind == "broken":
        return (
            f"after {event['waited_ms']:g} ms the replay breaks it as the operator does "
            f"(POST /admin/break-deadlocks): {event['deadlocks']} broken"
        )
    return kind


def _error(record: dict) -> str:
    if record["error"] == "deadlock":
        cycle = "; ".join(
            f"{step['thread']} holds {', '.join(step['holds']) or 'nothing'} and waits for {step['waits_for']}"
            for step in record["cycle"]
        )
        by = "the operator" if record["broken_by"] == "operator" else "the deadlock detector"
        return f"deadlock: {cycle}. {by.capitalize()} chose {record['victim']} as the victim: it rolls back"
    return record["detail"]


def _answer(answer: dict) -> str:
    if answer["ok"]:
        return answer["answer"]
    reason = "deadlock victim" if answer["error"] == "deadlock" else answer["error"].replace("-", " ")
    return f"refused ({reason}): {_error(answer).removeprefix(answer['error'] + ': ')}"


def _spell(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names) or "nobody"
    return ", ".join(names[:-1]) + " and " + names[-1]
