"""An exploration in words: what a trainee reads after `bankapp explore`."""

from __future__ import annotations


def _counts(result: dict) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in result["outcomes"].items() if count) or "none"


def render(result: dict, url: str | None = None) -> list[str]:
    """The lines `bankapp explore` prints for one guard (`url`: the server it ran on, where a schedule found on
    its database replays)."""
    total = result["schedules"] + result["equivalent"]
    failing = sum(count for kind, count in result["outcomes"].items() if kind != "ok")
    threads = f"{result['threads']} thread{'s' if result['threads'] > 1 else ''}"
    head = f"{result['scenario']} under {result['guard']}, {threads}: "
    if result["complete"]:
        head += f"every schedule tried, {total} in all"
    else:
        head += f"stopped early ({result['stopped']}); {total} schedules seen, not all"
    lines = [
        head,
        f"  {result['schedules']} run, {result['equivalent']} skipped as equivalent to one run "
        "(the same steps, every conflicting pair in the same order)",
        f"  outcomes: {_counts(result)}",
    ]
    example = result["counterexample"]
    if example is None:
        lines.append(f"  no schedule fails: 0 of {total}")
        return lines
    lines += [
        f"  {failing} of {total} schedules fail; the shortest, {example['outcome']}:",
        f'    bankapp interleave {result["scenario"]} --guard {result["guard"]} --schedule "{example["schedule"]}"'
        + (f" --url {url}" if url and result.get("store") == "postgres" else ""),
    ]
    for step in example["steps"]:
        then = f" (then {', '.join(step['then'])} went on)" if step.get("then") else ""
        lines.append(f"    {step['step']:<12} {step['does']}{then}")
    for stuck in example.get("stuck", []):
        held_by = ", ".join(stuck["held_by"]) or "nobody"
        lines.append(f"    {stuck['thread']} waits for the {stuck['waits_for']}, held by {held_by}")
    return lines


def render_table(results: list[dict]) -> list[str]:
    """`--guard all`: one row per guard."""
    first = results[0]
    lines = [
        f"{first['scenario']}, {first['threads']} thread{'s' if first['threads'] > 1 else ''}, every guard:",
        f"  {'guard':<14} {'schedules':>13} {'run':>5} {'failing':>8}  outcomes; shortest failing schedule",
    ]
    for result in results:
        total = result["schedules"] + result["equivalent"]
        failing = sum(count for kind, count in result["outcomes"].items() if kind != "ok")
        example = result["counterexample"]
        tail = f"; {example['outcome']}: {example['schedule']}" if example else ""
        mark = "" if result["complete"] else " (stopped early)"
        lines.append(
            f"  {result['guard']:<14} {total:>13} {result['schedules']:>5} {failing:>8}  {_counts(result)}{tail}{mark}"
        )
    return lines
