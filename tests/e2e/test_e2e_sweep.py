"""Real sweeps, small: every point of every series lands in results.json (closed loop with Locust, open loop)."""

import json

import pytest

from bankapp.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_closed_loop_sweep_writes_every_repeat_of_every_level_and_a_fit(tmp_path, capsys):
    flags = ["--guards", "lock", "--users", "1,2,4", "--repeat", "2", "--duration", "0.8", "--warmup", "0.3"]
    assert main(["sweep", "--keys", "hot", "--out", str(tmp_path), *flags]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    (series,) = results["series"]
    assert [level["level"] for level in series["levels"]] == [1, 2, 4]
    assert [len(level["repeats"]) for level in series["levels"]] == [2, 2, 2]
    for level in series["levels"]:
        for point in level["repeats"]:
            assert point["completed"] > 0 and point["errors"] == 0
            assert point["little"]["users"] == level["level"]
            assert point["generator_cpu"] > 0  # Locust did work, and it was counted
    assert set(series["fit"]) >= {"lambda", "sigma", "kappa", "n_star", "r2"}
    assert series["sentence"].startswith("lock:")
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert "| lock | 4 |" in capsys.readouterr().out


def test_an_open_loop_sweep_times_requests_from_when_they_were_due(tmp_path):
    flags = ["--scenario", "checkout", "--guards", "adaptive", "--rate", "20,40", "--repeat", "2"]
    assert main(["sweep", *flags, "--duration", "1", "--warmup", "0.3", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["loop"] == "open"
    (series,) = results["series"]
    assert series["fit"] is None  # the USL is a law of users, not of rates
    for level in series["levels"]:
        for point in level["repeats"]:
            assert point["requests"] == pytest.approx(level["level"] * 1, abs=3)  # the schedule, kept
            assert point["server"]["limit"] is not None
