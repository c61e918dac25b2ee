"""The compare report: results.json, results.csv, report.md, report.html.

Charts are drawn by matplotlib and embedded in the HTML as inline SVG, so the
page is one self-contained file that opens offline; `report.png` holds the
same charts in one picture.
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

from .columns import COLUMNS
from .rows import ROW_FIELDS

COLOURS = {"deposit": "#4C72B0", "checkout": "#DD8452", "transfer": "#55A868"}


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
    for offset, key in zip((-width, 0, width), ("p50_ms", "p95_ms", "p99_ms"), strict=True):
        ax.bar([x + offset for x in xs], [r[key] for r in rows], width, label=key.removesuffix("_ms"))
    ax.set_xticks(list(xs), [label(r) for r in rows], rotation=45)
    ax.set_title("Latency percentiles (ms)")
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


#: (scenario the chart is about, or None for every row; how to draw it)
CHARTS = [
    (None, draw_throughput),
    (None, draw_latency),
    ("deposit", draw_only("deposit", "lost_updates", "Deposits: lost updates (cents)")),
    ("checkout", draw_peak),
    ("checkout", draw_only("checkout", "rejected", "Checkout: rejected by admission")),
    ("transfer", draw_only("transfer", "deadlocks", "Transfers: deadlocks detected")),
]


def charts_for(rows: list[dict]) -> list:
    """The charts worth drawing: those about a scenario only if it ran (an empty panel says nothing)."""
    ran = {row["scenario"] for row in rows}
    return [draw for scenario, draw in CHARTS if scenario is None or scenario in ran]


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
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def write(rows: list[dict], folder: Path, title: str = "bankapp compare") -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("results.json", "results.csv", "report.md", "report.html", "report.png")}
    paths["results.json"].write_text(json.dumps(rows, indent=2))
    with paths["results.csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "settings": json.dumps(row["settings"]), "anomalies": " | ".join(row["anomalies"])})
    sentences = [f"- **{r['scenario']} / {r['guard']}**: {r['sentence']}" for r in rows]
    paths["report.md"].write_text("\n".join([f"# {title}", "", *table_lines(rows), "", *sentences, ""]))
    charts = "\n".join(f"<figure>{svg(draw, rows)}</figure>" for draw in charts_for(rows))
    items = "".join(
        f"<li><b>{html.escape(r['scenario'])} / {html.escape(r['guard'])}</b>: {html.escape(r['sentence'])}</li>"
        for r in rows
    )
    paths["report.html"].write_text(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+2),th:nth-child(-n+2){{text-align:left}}
figure{{display:inline-block;margin:0 1em 1em 0}}svg{{max-width:100%;height:auto}}</style></head><body>
<h1>{html.escape(title)}</h1>{table_html(rows)}
<ul>{items}</ul>{charts}</body></html>
"""
    )
    picture(rows, paths["report.png"])
    return paths
