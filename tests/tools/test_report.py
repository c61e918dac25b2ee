"""The compare report from rows: every file, offline charts, a sentence per row."""

import csv
import json

from bankapp.compare.explain import explain
from bankapp.compare.matrix import MATRIX
from bankapp.compare.report import write


def fake_rows():
    rows = []
    for index, config in enumerate(MATRIX):
        row = {
            "scenario": config.scenario,
            "guard": config.guard,
            "settings": config.settings,
            "requests": 1000 + index,
            "rps": 300.0 + index,
            "completed_per_s": 20.0 if config.scenario == "checkout" and config.guard == "lock" else 100.0,
            "rejected_per_s": 280.0 if config.scenario == "checkout" and config.guard != "unsafe" else 0.0,
            "p50_ms": 5.0,
            "p95_ms": 20.0,
            "p99_ms": 40.0,
            "lost_updates": 512 if config.guard in {"unsafe", "semaphore(4)"} and config.scenario == "deposit" else 0,
            "acknowledged": 2000,
            "oversold": 7 if config.scenario == "checkout" and config.guard == "unsafe" else 0,
            "peak_in_flight": {"unsafe": 24, "lock": 1, "semaphore": 8}.get(config.guard, 0),
            "capacity": 8 if config.scenario == "checkout" else None,
            "gateway_capacity": 8,
            "rejected": 900 if config.scenario == "checkout" and config.guard == "semaphore" else 0,
            "completed": 300,
            "duration_s": 3,
            "deadlocks": 33 if config.guard == "naive" else 0,
            "retries": 12,
            "wrong_total_reads": 4 if config.guard == "release-first" else 0,
            "total_conserved": config.guard != "unsafe",
            "total_error": -300 if config.guard == "unsafe" else 0,
            "ok": config.guard not in {"unsafe", "semaphore(4)", "release-first"},
            "anomalies": [] if config.guard != "unsafe" else ["lost 512 of 2,000 acknowledged deposits (25.6 %)"],
        }
        row["sentence"] = explain(row)
        row["series"] = fake_series(row)
        rows.append(row)
    return rows


def fake_series(row: dict) -> dict:
    """Four readings a second apart that end at the row's figures, in the shape `series.build` makes."""
    t = [0.0, 1.0, 2.0, 3.0]
    series = {"t": t, "completed_per_s": [0.0, 90.0, 100.0, 110.0], "rejected_per_s": [0.0, 0.0, 1.0, 2.0]}
    if row["scenario"] == "deposit":
        series["lost_cents"] = [0, row["lost_updates"] // 4, row["lost_updates"] // 2, row["lost_updates"]]
    elif row["scenario"] == "checkout":
        series["in_flight"] = [0, row["peak_in_flight"], row["peak_in_flight"] - 1, 0]
        series["capacity"] = [row["capacity"] or row["gateway_capacity"]] * 4
        series["oversold"] = [0, 0, row["oversold"], row["oversold"]]
    else:
        expected = 1_600_000
        series["deadlocks"] = [0, min(10, row["deadlocks"]), row["deadlocks"], row["deadlocks"]]
        series["audited_total"] = [expected, None, expected, expected + row["total_error"]]
        series["expected_total"] = [expected, None, expected, expected]
        series["wrong_audits"] = [0, 0, row["wrong_total_reads"], row["wrong_total_reads"]]
    return series


def test_report_files_parse_and_charts_are_inline(tmp_path):
    rows = fake_rows()
    paths = write(rows, tmp_path / "report")
    assert json.loads(paths["results.json"].read_text()) == rows
    with paths["results.csv"].open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["guard"] for r in table] == [r["guard"] for r in rows]
    assert {"scenario", "guard", "settings", "requests", "rps", "p50_ms", "p95_ms", "p99_ms"} <= table[0].keys()
    assert {"completed_per_s", "rejected_per_s"} <= table[0].keys()
    assert {"lost_updates", "oversold", "peak_in_flight", "rejected", "deadlocks", "ok"} <= table[0].keys()
    page = paths["report.html"].read_text()
    assert page.count("<svg") == 10  # six bar charts, four over time
    for title in (
        "Deposits: cents lost so far",
        "Checkout: in flight (dashed: capacity) over time",
        "Transfers: deadlocks so far",
        "Transfers: audited total minus expected (cents)",
    ):
        figure = next(part for part in page.split("<figure>") if title in part)
        assert figure.count("<path") > 4, title  # the lines are drawn, not an empty frame
    assert "<script" not in page and "<link" not in page and "src=" not in page  # nothing fetched: opens offline
    markdown = paths["report.md"].read_text()
    assert markdown.count("\n| deposit |") == 5
    assert "512 of 2,000" in markdown
    assert paths["report.png"].read_bytes().startswith(b"\x89PNG")


def test_each_row_has_a_sentence_naming_its_numbers():
    rows = {(r["scenario"], r["guard"]): r["sentence"] for r in fake_rows()}
    assert "512 of 2,000" in rows[("deposit", "unsafe")]
    assert "none of 2,000 lost" in rows[("deposit", "lock")]
    assert "4 permits" in rows[("deposit", "semaphore(4)")]
    assert "oversold 7" in rows[("checkout", "unsafe")]
    assert "20 checkouts/s completed, and 280/s turned away" in rows[("checkout", "lock")]
    assert "100 checkouts/s completed, 280/s turned away" in rows[("checkout", "semaphore")]
    assert "deadlocked 33 times" in rows[("transfer", "naive")]
    assert "4 audits saw money in flight" in rows[("transfer", "release-first")]


def test_locust_rows_merge_into_one_summary():
    from bankapp.compare.rows import summarize

    entries = [
        {"num_requests": 90, "start_time": 100.0, "last_request_timestamp": 110.0, "response_times": {"10": 90}},
        {"num_requests": 10, "start_time": 101.0, "last_request_timestamp": 109.0, "response_times": {"500": 10}},
    ]
    summary = summarize(entries)
    assert summary["requests"] == 100
    assert summary["rps"] == 10.0
    assert summary["elapsed_s"] == 10.0
    assert (summary["p50_ms"], summary["p95_ms"], summary["p99_ms"]) == (10.0, 500.0, 500.0)


def test_throughput_is_what_got_done_and_what_was_refused_not_requests_alone(tmp_path):
    """The lock row of checkout answers many fast 503s: its requests/s is high, its completed/s low.
    The table shows completed/s and rejected/s first, and the sentence quotes the same figure."""
    rows = [r for r in fake_rows() if r["scenario"] == "checkout"]
    markdown = write(rows, tmp_path / "report")["report.md"].read_text()
    header = markdown.splitlines()[2]
    assert header.startswith("| scenario | guard | completed/s | rejected/s | requests/s |"), header
    lock = next(line for line in markdown.splitlines() if line.startswith("| checkout | lock |"))
    assert lock.startswith("| checkout | lock | 20 | 280 | 306 |"), lock
    assert "only 20 checkouts/s completed" in markdown


def test_panels_only_for_scenarios_that_ran(tmp_path):
    checkout_only = [r for r in fake_rows() if r["scenario"] == "checkout"]
    page = write(checkout_only, tmp_path / "checkout")["report.html"].read_text()
    assert page.count("<svg") == 5  # throughput, latency, peak in flight, rejections, in flight over time
    assert "lost updates" not in page.split("<figure>", 1)[1] and "deadlocks detected" not in page
    deposits_only = [r for r in fake_rows() if r["scenario"] == "deposit"]
    page = write(deposits_only, tmp_path / "deposit")["report.html"].read_text()
    assert page.count("<svg") == 4  # throughput, latency, lost updates, cents lost over time
    without_series = [{**r, "series": None} for r in deposits_only]  # results from before series were recorded
    page = write(without_series, tmp_path / "old")["report.html"].read_text()
    assert page.count("<svg") == 3 and "cents lost so far" not in page


def test_latency_is_drawn_on_a_log_scale():
    """A 1 ms deposit and a 1 s deadlock victim both read."""
    import matplotlib.pyplot as plt

    from bankapp.compare.report import draw_latency

    rows = fake_rows()
    rows[0]["p99_ms"] = 1300.0
    figure, ax = plt.subplots()
    draw_latency(ax, rows)
    assert ax.get_yscale() == "log"
    assert ax.get_ylim()[1] >= 1300.0 and ax.get_ylim()[0] < 5.0
    plt.close(figure)


def test_anomalies_by_kind_are_in_the_report_and_in_anomalies_json(tmp_path):
    rows = fake_rows()
    paths = write(rows, tmp_path / "report")
    groups = json.loads(paths["anomalies.json"].read_text())
    assert list(groups) == ["lost-update", "oversold", "over-capacity", "deadlock", "wrong-audit", "money-destroyed"]
    assert groups["lost-update"]["total"] == sum(r["lost_updates"] for r in rows if r["scenario"] == "deposit")
    assert groups["deadlock"]["total"] == 33 and groups["money-destroyed"]["worst"]["figure"] == -300
    markdown = paths["report.md"].read_text()
    section = markdown.split("## Anomalies by kind", 1)[1]
    assert "| lost-update | 6 | 1,024 | deposit / unsafe at 1.0 s: 128 cents lost |" in section
    assert "- money-destroyed: the furthest below the expected total" in section
    page = paths["report.html"].read_text()
    assert "<h2>Anomalies by kind</h2>" in page and "transfer / unsafe at 3.0 s: the audited total -300 cents" in page


def test_a_row_whose_writes_erased_others_quotes_one_erasure():
    row = next(r for r in fake_rows() if (r["scenario"], r["guard"]) == ("deposit", "unsafe"))
    example = "deposit 3f2a on Thread-7 read 100,412 (v312) and wrote 100,413 over v313, ...: its 1 cent is gone."
    sentence = explain({**row, "race_example": example})
    assert sentence == f"{row['sentence']} For example, {example}"
