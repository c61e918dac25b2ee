"""The compare report: results.json, results.csv, anomalies.json, report.md, report.html.

Charts are drawn by matplotlib and embedded in the HTML as inline SVG, so the
page is one self-contained file that opens offline; `report.png` holds the
same charts in one picture. Bars compare the rows; lines show each row over
time (its `series`), one chart per scenario, a line per guard, in Okabe and
Ito's palette (told apart with any colour vision) and with a marker each, so
a line is known by its shape too. Latency is on a log scale: a 1 ms deposit
and a 1 s deadlock victim both read. The anomalies, grouped by kind
(`anomalies`), get a section of their own.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: draw to files
import matplotlib.pyplot as plt

from .anomalies import html_section, markdown_lines, run_groups
from .columns import COLUMNS
from .rows import ROW_FIELDS

#: Okabe and Ito's colour-blind-safe palette (yellow left out: too pale on white).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
MARKERS = "os^Dv<>"
COLOURS = {"deposit": PALETTE[0], "checkout": PALETTE[4], "transfer": PALETTE[2]}


def label(row: dict) -> str:
    return f"{row['scenario']}\n{row['guard']}"


def table_lines(rows: list[dict]) -> list[str]:
    """The table in Markdown."""
    lines = ["| " + " | ".join(column.header for column in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return lines + ["| " + " | ".join(column.cell(row) for column in COLUMNS) + " |" for row in rows]


def table_html(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(column.header)}</th>" for column in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(column.cell(row))}</td>" for column in COLUMNS) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def draw_throughput(ax, rows):
    """What got done and what was refused, side by side: a fast refusal is not throughput."""
    width = 0.4
    xs = range(len(rows))
    colours = [COLOURS[r["scenario"]] for r in rows]
    ax.bar([x - width / 2 for x in xs], [r["completed_per_s"] for r in rows], width, color=colours, label="completed")
    ax.bar(
        [x + width / 2 for x in xs],
        [r["rejected_per_s"] for r in rows],
        width,
        color="white",
        edgecolor=colours,
        hatch="//",
        label="rejected",
    )
    ax.set_xticks(list(xs), [label(r) for r in rows], rotation=45)
    ax.set_title("Operations per second: completed, rejected")
    ax.legend()


def draw_latency(ax, rows):
    width = 0.27
    xs = range(len(rows))
    for offset, key, colour in zip((-width, 0, width), ("p50_ms", "p95_ms", "p99_ms"), PALETTE, strict=False):
        ax.bar([x + offset for x in xs], [r[key] for r in rows], width, color=colour, label=key.removesuffix("_ms"))
    ax.set_xticks(list(xs), [label(r) for r in rows], rotation=45)
    ax.set_yscale("log")  # a 1 ms deposit and a 1 s deadlock victim on one chart
    ax.set_ylim(bottom=0.5)  # Locust rounds below 1 ms to 0, which a log scale cannot show
    ax.set_title("Latency percentiles (ms, log scale)")
    ax.legend()


def draw_only(scenario, key, title):
    def draw(ax, rows):
        chosen = [r for r in rows if r["scenario"] == scenario]
        ax.bar([r["guard"] for r in chosen], [r[key] for r in chosen], color=COLOURS[scenario])
        ax.set_title(title)

    return draw


def draw_peak(ax, rows):
    chosen = [r for r in rows if r["scenario"] == "checkout"]
    names = [r["guard"] for r in chosen]
    ax.bar(names, [r["peak_in_flight"] for r in chosen], color=COLOURS["checkout"], label="peak in flight")
    # Under unsafe nothing limits admission; the limit being overrun is the gateway's.
    limits = [r["capacity"] or r.get("gateway_capacity") or 0 for r in chosen]
    ax.scatter(names, limits, color="black", marker="_", s=900, label="capacity (the gateway's under unsafe)")
    ax.set_title("Checkout: peak in flight vs capacity")
    ax.legend()


def with_series(rows: list[dict], scenario: str) -> list[dict]:
    return [r for r in rows if r["scenario"] == scenario and r.get("series")]


def line_style(number: int) -> dict:
    return {"color": PALETTE[number % len(PALETTE)], "marker": MARKERS[number % len(MARKERS)], "markersize": 3}


def over_time(scenario: str, values, title: str):
    """A chart of one quantity over the seconds of each row of `scenario`, a line per guard;
    `values(series)` is the line's values (None where nothing was read)."""

    def draw(ax, rows):
        for number, row in enumerate(with_series(rows, scenario)):
            points = [float("nan") if value is None else value for value in values(row["series"])]
            ax.plot(row["series"]["t"], points, label=row["guard"], linewidth=1.2, **line_style(number))
        ax.set_title(title)
        ax.set_xlabel("seconds since the row began")
        ax.legend(fontsize=7)

    return draw


def draw_in_flight(ax, rows):
    """Each checkout guard's in flight, and its capacity dashed in the same colour."""
    for number, row in enumerate(with_series(rows, "checkout")):
        series, style = row["series"], line_style(number)
        ax.plot(series["t"], series["in_flight"], label=row["guard"], linewidth=1.2, **style)
        limits = [float("nan") if value is None else value for value in series["capacity"]]
        ax.plot(series["t"], limits, color=style["color"], linestyle="--", linewidth=1, drawstyle="steps-post")
    ax.set_title("Checkout: in flight (dashed: capacity) over time")
    ax.set_xlabel("seconds since the row began")
    ax.legend(fontsize=7)


def audit_error(series: dict) -> list:
    pairs = zip(series["audited_total"], series["expected_total"], strict=True)
    return [None if total is None or expected is None else total - expected for total, expected in pairs]


#: (scenario the chart is about, or None for every row; whether it draws series; how to draw it)
CHARTS = [
    (None, False, draw_throughput),
    (None, False, draw_latency),
    ("deposit", False, draw_only("deposit", "lost_updates", "Deposits: lost updates (cents)")),
    ("checkout", False, draw_peak),
    ("checkout", False, draw_only("checkout", "rejected", "Checkout: rejected by admission")),
    ("transfer", False, draw_only("transfer", "deadlocks", "Transfers: deadlocks detected")),
    ("deposit", True, over_time("deposit", lambda s: s["lost_cents"], "Deposits: cents lost so far")),
    ("checkout", True, draw_in_flight),
    ("transfer", True, over_time("transfer", lambda s: s["deadlocks"], "Transfers: deadlocks so far")),
    ("transfer", True, over_time("transfer", audit_error, "Transfers: audited total minus expected (cents)")),
]


def charts_for(rows: list[dict]) -> list:
    """The charts worth drawing: those about a scenario only if it ran, those over time only if
    it has series (an empty panel says nothing)."""
    ran = {row["scenario"] for row in rows}
    timed = {row["scenario"] for row in rows if row.get("series")}
    return [draw for scenario, series, draw in CHARTS if scenario is None or (scenario in (timed if series else ran))]


def svg(draw, rows) -> str:
    figure, ax = plt.subplots(figsize=(9 if draw in (draw_throughput, draw_latency) else 5.5, 3.6))
    draw(ax, rows)
    ax.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def picture(rows, path: Path) -> None:
    charts = charts_for(rows)
    lines = (len(charts) + 1) // 2
    figure, axes = plt.subplots(lines, 2, figsize=(16, 4.4 * lines), squeeze=False)
    for ax, draw in zip(axes.flat, charts, strict=False):
        draw(ax, rows)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes.flat[len(charts) :]:
        ax.set_visible(False)
    figure.suptitle("bankapp compare")
    figure.tight_layout(rect=(0, 0, 1, 0.98))  # room for the title
    figure.savefig(path, dpi=80)
    plt.close(figure)


def write(rows: list[dict], folder: Path, title: str = "bankapp compare") -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    names = ("results.json", "results.csv", "anomalies.json", "report.md", "report.html", "report.png")
    paths = {name: folder / name for name in names}
    paths["results.json"].write_text(json.dumps(rows, indent=2))
    groups = run_groups(rows)
    paths["anomalies.json"].write_text(json.dumps(groups, indent=2))
    with paths["results.csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "settings": json.dumps(row["settings"]), "anomalies": " | ".join(row["anomalies"])})
    sentences = [f"- **{r['scenario']} / {r['guard']}**: {r['sentence']}" for r in rows]
    markdown = [f"# {title}", "", *table_lines(rows), "", *sentences, "", *markdown_lines(groups)]
    paths["report.md"].write_text("\n".join(markdown))
    charts = "\n".join(f"<figure>{svg(draw, rows)}</figure>" for draw in charts_for(rows))
    items = "".join(
        f"<li><b>{html.escape(r['scenario'])} / {html.escape(r['guard'])}</b>: {html.escape(r['sentence'])}</li>"
        for r in rows
    )
    paths["report.html"].write_text(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+2),th:nth-child(-n+2){{text-align:left}}
table.anomalies td{{text-align:left}}
figure{{display:inline-block;margin:0 1em 1em 0}}svg{{max-width:100%;height:auto}}</style></head><body>
<h1>{html.escape(title)}</h1>{table_html(rows)}
<ul>{items}</ul>{html_section(groups)}{charts}</body></html>
"""
    )
    picture(rows, paths["report.png"])
    return paths
