"""The sweep's report: results.json (every repeat of every point, and each fit), report.md, a chart.

The chart has two panels sharing the x axis (users, or offered requests per
second in the open loop): completed/s with each level's 95 % interval as an
error bar and the fitted USL as a line, and p99 on a log scale. One line per
guard, in the compare report's palette and markers, so a line is known by
its shape too. A point where the load generator saturated is drawn hollow.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: draw to files
import matplotlib.pyplot as plt
import numpy as np

from ..compare.report import MARKERS, PALETTE
from . import usl

#: Below this many repeats the t-interval is wide, and the report says so.
FEW_REPEATS = 4


def number(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def plus_minus(summary: dict | None, digits: int = 1) -> str:
    if not summary:
        return "-"
    half = summary["half_width"]
    return number(summary["mean"], digits) + ("" if half is None else f" ± {number(half, digits)}")


def sentence(series: dict, results: dict) -> str:
    """What one guard's numbers say, in one sentence built from them."""
    levels = series["levels"]
    best = max(levels, key=lambda level: level["completed_per_s"]["mean"])
    unit = "req/s offered" if results["loop"] == "open" else "users"
    text = (
        f"{series['name']}: at most {best['completed_per_s']['mean']:,.0f} completed/s "
        f"(at {best['level']:g} {unit}), p99 from {levels[0]['p99_ms']['mean']:,.0f} ms to "
        f"{levels[-1]['p99_ms']['mean']:,.0f} ms across the levels"
    )
    fit = series.get("fit")
    if fit:
        most = max(level["level"] for level in levels)
        if fit["n_star"] is not None and fit["n_star"] < 1.5:
            shape = "throughput does not grow with users: one user alone gets about all there is"
        elif fit["n_star"] is None:
            shape = "no retrograde region (kappa 0): it flattens rather than falls"
        elif fit["n_star"] <= most:
            shape = f"throughput peaks near N* = {fit['n_star']:.0f} and falls beyond it"
        else:
            shape = f"the fit puts its peak at N* = {fit['n_star']:.0f}, beyond the {most:g} users measured"

        share = "serializes almost everything" if fit["sigma"] > 0.9 else f"serializes {fit['sigma']:.0%} of the work"
        text += f"; USL sigma {fit['sigma']:.3f}, kappa {fit['kappa']:.4f} (R² {fit['r2']:.2f}): it {share}, {shape}"
    retries = [level["retry_rate"]["mean"] for level in levels if level["retry_rate"]["mean"]]
    if retries:
        text += f"; serialization retries up to {max(retries):.2f} per deposit"
    lost = sum(point["server"]["lost_updates"] for level in levels for point in level["repeats"])
    if lost:
        text += f"; {lost:,} updates lost, so its speed is not a result"
    saturated = [level["level"] for level in levels if level["generator_saturated"]]
    if saturated:
        text += f"; the load generator saturated at {', '.join(f'{s:g}' for s in saturated)} (those points measure it)"
    return text + "."


def table_lines(results: dict) -> list[str]:
    level_name = "offered req/s" if results["loop"] == "open" else "users"
    lines = [
        f"| guard | {level_name} | completed/s (95 % CI) | p50 ms (completed) | p99 ms (completed) | errors/s | "
        "N - X(R+Z) | "
        f"{'generator' if results['loop'] == 'open' else 'Locust'} CPU | server CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for series in results["series"]:
        for level in series["levels"]:
            little = level["little_relative"]
            little_cell = "-" if not little else f"{little['mean']:+.0%}"
            server_cpu = "-" if level.get("server_cpu") is None else f"{level['server_cpu']:.0%}"
            lines.append(
                f"| {series['name']} | {level['level']:g} | {plus_minus(level['completed_per_s'])} | "
                f"{plus_minus(level['p50_ms'])} | {plus_minus(level['p99_ms'])} | "
                f"{plus_minus(level['errors_per_s'])} | "
                f"{little_cell} | {level['generator_cpu']:.0%}"
                f"{' (saturated)' if level['generator_saturated'] else ''} | {server_cpu} |"
            )
    return lines


def fit_lines(results: dict) -> list[str]:
    lines = ["| guard | lambda (/s) | sigma | kappa | N* | peak (/s) | R² |", "|---|---|---|---|---|---|---|"]
    for series in results["series"]:
        fit = series.get("fit")
        if fit:
            n_star = "none" if fit["n_star"] is None else f"{fit['n_star']:.1f}"
            lines.append(
                f"| {series['name']} | {fit['lambda']:,.1f} | {fit['sigma']:.4f} | {fit['kappa']:.5f} | {n_star} | "
                f"{number(fit['peak_x'], 0)} | {fit['r2']:.3f} |"
            )
        else:
            lines.append(f"| {series['name']} | no fit | | | | | |")
    return lines


def chart(results: dict, path: Path) -> None:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for number_, series in enumerate(results["series"]):
        colour, marker = PALETTE[number_ % len(PALETTE)], MARKERS[number_ % len(MARKERS)]
        levels = series["levels"]
        xs = [level["level"] for level in levels]
        for ax, key in ((top, "completed_per_s"), (bottom, "p99_ms")):
            means = [level[key]["mean"] for level in levels]
            errors = [level[key]["half_width"] or 0 for level in levels]
            fill = [("none" if level["generator_saturated"] else colour) for level in levels]
            ax.errorbar(xs, means, yerr=errors, color=colour, fmt="none", capsize=3)
            ax.scatter(xs, means, marker=marker, edgecolors=colour, facecolors=fill, zorder=3, label=series["name"])
            if key == "p99_ms":
                ax.plot(xs, means, color=colour, linewidth=1)
        fit = series.get("fit")
        if fit:
            grid = np.linspace(min(xs), max(xs), 200)
            top.plot(grid, usl.throughput(grid, fit["lambda"], fit["sigma"], fit["kappa"]), color=colour, linewidth=1)
    loop = "open loop, offered requests/s" if results["loop"] == "open" else "closed loop, Locust users (N)"
    title = f"{results['scenario']} on {results['store']}, keys {results['keys']}, {results['repeat']} repeats"
    top.set_title(title + (" (lines: USL fit)" if results["loop"] == "closed" else ""))
    top.set_ylabel("completed/s (95 % CI)")
    bottom.set_ylabel("p99 (ms, log)")
    bottom.set_yscale("log")
    bottom.set_xlabel(loop)
    for ax in (top, bottom):
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
    top.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(results: dict, folder: Path) -> dict[str, Path]:
    """Write results.json, report.md and the chart; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for series in results["series"]:
        series["sentence"] = sentence(series, results)
    paths = {"json": folder / "results.json", "md": folder / "report.md", "chart": folder / "sweep.png"}
    paths["json"].write_text(json.dumps(results, indent=2) + "\n")
    chart(results, paths["chart"])
    caveat = (
        [f"With {results['repeat']} repeats Student's t-interval is wide (t = 4.30 at 3, 12.7 at 2): read it as rough."]
        if results["repeat"] < FEW_REPEATS
        else []
    )
    lines = [
        f"# bankapp sweep: {results['scenario']}",
        "",
        f"{results['loop']} loop, store {results['store']}, keys {results['keys']}, {results['repeat']} repeats of "
        f"{results['duration_s']:g} s each after {results['warmup_s']:g} s of warm-up, think time "
        f"{results['think_ms']:g} ms; 95 % t-intervals.",
        *caveat,
        "",
        *table_lines(results),
        "",
        *(fit_lines(results) if results["loop"] == "closed" else []),
        "",
        *(f"- {series['sentence']}" for series in results["series"]),
        "",
        f"![sweep]({paths['chart'].name})",
        "",
    ]
    paths["md"].write_text("\n".join(lines))
    return paths
