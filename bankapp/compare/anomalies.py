"""Anomalies grouped by kind, each kind with its first, worst and last example.

Jepsen's checkers do not list every bad operation: they group anomalies by
kind and show a few, so a reader sees what went wrong, how often, and the
worst of it. Here an example is one second of one row in which the row's
series (`series`) shows the kind; its `figure` is how much. The kinds:

- `lost-update`: lost cents rose; the figure is the cents lost in that second.
- `oversold`: the flash sale sold more than its stock; units oversold in that second.
- `over-capacity`: more checkouts in flight than the capacity (the gateway's,
  when nothing admits); the figure is the number in flight.
- `deadlock`: deadlocks detected in that second.
- `wrong-audit`: audits that read a total other than the expected one in
  that second (money in flight, or gone).
- `money-created` / `money-destroyed`: the audited total above or below the
  expected one, in a row whose total is still wrong once the transfers have
  stopped; the figure is how many cents off. A wrong total that heals at
  rest was money in flight, a `wrong-audit`, not money made or lost.
- `verdict`: a row the verdict failed whose series shows none of the above
  (the verdict's first sentence, at the row's end), so no failure goes unlisted.

Worst is the example with the largest figure (for money, the furthest from
the expected total either way); the earliest of equals. Examples are in time
order: by row (rows run one after another), then by `t` within the row, so
`first`, `worst`, `last` are in that order.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    what: str  # a figure in words: "{figure} cent{s} lost"
    worst: str  # what makes an example the worst of its kind
    additive: bool = True  # figures add up to a total for the run (cents, units, deadlocks, reads)


KINDS = {
    "lost-update": Kind("{figure:,} cent{s} lost", "the second that lost the most cents"),
    "oversold": Kind("{figure:,} unit{s} oversold", "the second that oversold the most units"),
    "over-capacity": Kind(
        "{figure:,} in flight against a capacity of {capacity}", "the most checkouts in flight at once", False
    ),
    "deadlock": Kind("{figure:,} deadlock{s} detected", "the second with the most deadlocks"),
    "wrong-audit": Kind("{figure:,} audit{s} read a wrong total", "the second with the most wrong reads"),
    "money-created": Kind(
        "the audited total {figure:+,} cent{s} off the expected", "the furthest above the expected total", False
    ),
    "money-destroyed": Kind(
        "the audited total {figure:+,} cent{s} off the expected", "the furthest below the expected total", False
    ),
    "verdict": Kind("{sentence}", "the row with the most anomalies in its verdict", False),
}


def rises(values: list) -> Iterable[tuple[int, int]]:
    """(index, rise) wherever a running count went up since the previous reading."""
    for index in range(1, len(values)):
        if values[index] > values[index - 1]:
            yield index, values[index] - values[index - 1]


def example(kind: str, row: dict, index: int, t: float, figure: int, **words) -> dict:
    said = KINDS[kind].what.format(figure=figure, s="" if abs(figure) == 1 else "s", **words)
    return {
        "kind": kind,
        "row": index,
        "scenario": row["scenario"],
        "guard": row["guard"],
        "t": t,
        "figure": figure,
        "says": f"{row['scenario']} / {row['guard']} at {t:.1f} s: {said}",
    }


def money(row: dict, index: int, series: dict) -> list[dict]:
    """Wrong audited totals, if the total is still wrong at rest (the last reading)."""
    pairs = list(zip(series["audited_total"], series["expected_total"], strict=True))
    total, expected = pairs[-1] if pairs else (None, None)
    if total is None or total == expected:
        return []
    found = []
    for position, (total, expected) in enumerate(pairs):
        if total is not None and expected is not None and total != expected:
            kind = "money-created" if total > expected else "money-destroyed"
            found.append(example(kind, row, index, series["t"][position], total - expected))
    return found


def row_examples(row: dict, index: int) -> list[dict]:
    """Every anomaly the row's series shows, one example per kind per second, in time order.

    `index` is the row's place in the run (its position in results.json).
    """
    series = row.get("series") or {}
    t = series.get("t", [])
    found: list[dict] = []
    if row["scenario"] == "deposit" and t:
        found += [example("lost-update", row, index, t[i], rise) for i, rise in rises(series["lost_cents"])]
    elif row["scenario"] == "checkout" and t:
        found += [example("oversold", row, index, t[i], rise) for i, rise in rises(series["oversold"])]
        found += [
            example("over-capacity", row, index, t[i], flying, capacity=capacity)
            for i, (flying, capacity) in enumerate(zip(series["in_flight"], series["capacity"], strict=True))
            if capacity is not None and flying > capacity
        ]
    elif row["scenario"] == "transfer" and t:
        found += [example("deadlock", row, index, t[i], rise) for i, rise in rises(series["deadlocks"])]
        found += [example("wrong-audit", row, index, t[i], rise) for i, rise in rises(series["wrong_audits"])]
        found += money(row, index, series)
    if not found and not row["ok"]:
        end = t[-1] if t else row.get("duration_s", 0)
        sentences = row.get("anomalies") or ["the verdict failed"]
        found.append(example("verdict", row, index, end, len(sentences), sentence=sentences[0]))
    return sorted(found, key=when)


def when(found: dict) -> tuple[int, float]:
    return found["row"], found["t"]


def size(found: dict) -> float:
    return abs(found["figure"])


def group(examples: Iterable[dict]) -> dict[str, dict]:
    """{kind: {count, total, worst_means, first, worst, last}} over `examples`, kinds in `KINDS`' order.

    `count` is the number of examples (row-seconds), `total` the sum of their
    figures where figures add up (else None).
    """
    by_kind: dict[str, list[dict]] = {}
    for example in sorted(examples, key=when):
        by_kind.setdefault(example["kind"], []).append(example)
    groups = {}
    for kind, spec in KINDS.items():
        found = by_kind.get(kind)
        if not found:
            continue
        worst = max(found, key=size)  # max keeps the first of equals: the earliest
        groups[kind] = {
            "count": len(found),
            "total": sum(item["figure"] for item in found) if spec.additive else None,
            "worst_means": spec.worst,
            "first": found[0],
            "worst": worst,
            "last": found[-1],
        }
    return groups


def run_groups(rows: list[dict]) -> dict[str, dict]:
    """The whole run's anomalies by kind, rows in the order they ran."""
    return group(found for index, row in enumerate(rows) for found in row_examples(row, index))


def markdown_lines(groups: dict[str, dict]) -> list[str]:
    """The groups as a Markdown section: a table, then what worst means for each kind shown."""
    if not groups:
        return ["## Anomalies by kind", "", "None: every row kept its invariants.", ""]
    lines = [
        "## Anomalies by kind",
        "",
        "| kind | count | total | first | worst | last |",
        "|---|---|---|---|---|---|",
    ]
    for kind, found in groups.items():
        total = "" if found["total"] is None else f"{found['total']:,}"
        cells = [kind, f"{found['count']:,}", total, *(found[key]["says"] for key in ("first", "worst", "last"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Each example is one second of one row; worst is:"]
    lines += [f"- {kind}: {found['worst_means']}" for kind, found in groups.items()]
    return [*lines, ""]


def html_section(groups: dict[str, dict]) -> str:
    if not groups:
        return "<h2>Anomalies by kind</h2><p>None: every row kept its invariants.</p>"
    head = "".join(f"<th>{name}</th>" for name in ("kind", "count", "total", "first", "worst", "last"))
    body = ""
    for kind, found in groups.items():
        total = "" if found["total"] is None else f"{found['total']:,}"
        cells = [kind, f"{found['count']:,}", total, *(found[key]["says"] for key in ("first", "worst", "last"))]
        body += "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
    meanings = "".join(
        f"<li>{html.escape(kind)}: {html.escape(found['worst_means'])}</li>" for kind, found in groups.items()
    )
    return (
        f'<h2>Anomalies by kind</h2><table class="anomalies"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        f"</table><p>Each example is one second of one row; worst is:</p><ul>{meanings}</ul>"
    )
