"""The sweep's arithmetic and shapes: the USL fit, the intervals, Little's law, the flags, the report."""

import json
import math

import numpy as np
import pytest

from bankapp.cli import main
from bankapp.sweep import report, usl
from bankapp.sweep.levels import LevelError, parse_keys, parse_users
from bankapp.sweep.stats import interval, littles_law

LEVELS = [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize(("lam", "sigma", "kappa"), [(400.0, 0.05, 0.002), (1000.0, 0.3, 0.0005), (250.0, 0.02, 0.0)])
def test_a_fit_on_synthetic_usl_data_recovers_its_parameters(lam, sigma, kappa):
    rng = np.random.default_rng(7)
    ns = [n for n in LEVELS for _ in range(5)]
    xs = usl.throughput(ns, lam, sigma, kappa) * rng.normal(1, 0.01, len(ns))  # 1 % noise
    fit = usl.fit(ns, list(xs))
    assert fit.lam == pytest.approx(lam, rel=0.05)
    assert fit.sigma == pytest.approx(sigma, abs=0.02)
    assert fit.kappa == pytest.approx(kappa, abs=0.0005)
    assert fit.r2 > 0.95
    if kappa > 0:
        assert fit.n_star == pytest.approx(math.sqrt((1 - fit.sigma) / fit.kappa))
        assert fit.peak_x == pytest.approx(float(fit.curve([fit.n_star])[0]))


def test_without_coherency_cost_there_is_no_n_star_and_the_peak_is_the_ceiling():
    ns = [n for n in LEVELS for _ in range(3)]
    fit = usl.fit(ns, list(usl.throughput(ns, 100.0, 0.25, 0.0)))
    assert fit.kappa <= 1e-6 or fit.n_star is None
    if fit.kappa == 0:
        assert fit.n_star is None and fit.peak_x == pytest.approx(100 / 0.25, rel=0.02)


def test_too_few_levels_give_no_fit():
    assert usl.fit([1, 1, 2, 2], [10, 11, 19, 20]) is None


def test_the_interval_is_students_t_and_wider_with_fewer_repeats():
    five = interval([10, 12, 11, 9, 13])
    assert five["mean"] == 11
    assert five["half_width"] == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5), rel=1e-3)
    three = interval([10, 12, 11])
    assert three["half_width"] == pytest.approx(4.303 * 1 / math.sqrt(3), rel=1e-3)
    assert interval([5])["half_width"] is None


def test_littles_law_with_think_time():
    check = littles_law(users=10, requests_per_s=100, mean_response_s=0.05, think_s=0.05)
    assert check["x_r_z"] == pytest.approx(10) and check["difference"] == pytest.approx(0)
    assert littles_law(10, 100, 0.08)["relative"] == pytest.approx(0.2)


def test_keys():
    assert parse_keys("spread").accounts == [f"acc-{i:02d}" for i in range(16)]
    assert parse_keys("hot").locust_accounts() == "acc-00"
    zipf = parse_keys("zipf:1.2")
    listed = zipf.locust_accounts().split(",")
    assert listed.count("acc-00") > listed.count("acc-01") > listed.count("acc-15") >= 1
    assert listed.count("acc-00") / len(listed) == pytest.approx(zipf.hottest_share(), rel=0.05)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--users", "1,two"], "--users: 'two' is not a whole number"),
        (["--users", "0,4"], "--users: 0 is out of range"),
        (["--users", "4,4"], "--users: 4 is given twice"),
        (["--rate", "fast"], "--rate: 'fast' is not a number"),
        (["--rate", "0"], "--rate: 0 is out of range"),
        (["--keys", "cold"], "--keys: 'cold' is not spread, hot or zipf:S"),
        (["--keys", "zipf:-1"], "--keys: 'zipf:-1': the zipf exponent S must be a number above 0"),
        (["--users", "1,2", "--rate", "10"], "--rate and --users"),
    ],
)
def test_bad_values_are_refused_by_name(flags, named, capsys, tmp_path):
    assert main(["sweep", "--out", str(tmp_path / "never"), *flags]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "never").exists()  # refused before anything ran


def test_parse_users_keeps_the_order_given():
    assert parse_users("1, 2,8") == [1, 2, 8]
    with pytest.raises(LevelError):
        parse_users("")


def synthetic_results(loop="closed"):
    """Results in the runner's shape, numbers made up: for the report's shape only."""

    def point(x):
        return {
            "completed_per_s": x,
            "p50_ms": 2.0,
            "p99_ms": 9.0,
            "errors_per_s": 0.0,
            "generator_cpu": 0.5,
            "generator_saturated": False,
            "little": {"relative": 0.03},
            "server": {"lost_updates": 0, "retry_rate": 0.0},
        }

    series = []
    for guard, (lam, sigma, kappa) in {"lock": (400, 0.3, 0.001), "unsafe": (400, 0.02, 0.002)}.items():
        levels = []
        for n in (1, 2, 4, 8):
            repeats = [point(float(usl.throughput(n, lam, sigma, kappa)) * f) for f in (0.98, 1.0, 1.02)]
            values = [r["completed_per_s"] for r in repeats]
            levels.append(
                {
                    "level": float(n),
                    "completed_per_s": interval(values),
                    "p50_ms": interval([2, 2, 2]),
                    "p99_ms": interval([9, 10, 11]),
                    "errors_per_s": interval([0, 0, 0]),
                    "little_relative": interval([0.03] * 3),
                    "generator_cpu": 0.5,
                    "server_cpu": 1.2,
                    "generator_saturated": n == 8,
                    "retry_rate": interval([0, 0, 0]),
                    "repeats": repeats,
                }
            )
        fit = usl.fit(
            [lv["level"] for lv in levels for _ in lv["repeats"]],
            [r["completed_per_s"] for lv in levels for r in lv["repeats"]],
        )
        series.append({"guard": guard, "race_window_ms": None, "name": guard, "levels": levels, "fit": fit.as_dict()})
    return {
        "scenario": "deposit",
        "store": "memory",
        "workers": 1,
        "loop": loop,
        "keys": "hot",
        "repeat": 3,
        "duration_s": 1.0,
        "warmup_s": 0.5,
        "think_ms": 0,
        "confidence": 0.95,
        "elapsed_s": 1.0,
        "series": series,
    }


def test_the_report_has_every_point_a_fit_a_sentence_and_a_chart(tmp_path):
    paths = report.write(synthetic_results(), tmp_path)
    written = json.loads(paths["json"].read_text())
    assert [len(level["repeats"]) for series in written["series"] for level in series["levels"]] == [3] * 8
    lock = written["series"][0]
    assert set(lock["fit"]) == {"lambda", "sigma", "kappa", "n_star", "peak_n", "peak_x", "r2"}
    assert lock["sentence"].startswith("lock: at most") and f"sigma {lock['fit']['sigma']:.3f}" in lock["sentence"]
    assert "saturated at 8" in lock["sentence"]
    markdown = paths["md"].read_text()
    assert "t-interval is wide" in markdown and "| lock | 8 |" in markdown and "(saturated) | 120% |" in markdown
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_three_levels_one_repeat_each_still_fit_without_a_warning():
    """As many points as parameters: no covariance to estimate, which scipy warns of; the fit still stands."""
    fit = usl.fit([1, 2, 4], list(usl.throughput([1, 2, 4], 100.0, 0.2, 0.01)))
    assert fit is not None and fit.lam == pytest.approx(100, rel=0.05)
