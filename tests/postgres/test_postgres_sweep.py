"""The sweep and compare on the postgres store: a fleet of two workers, the database's guards."""

import json

import pytest

from bankapp.cli import main
from bankapp.compare.matrix import select

pytestmark = pytest.mark.postgres


def test_compare_on_the_postgres_store_picks_the_database_guards():
    rows = select(scenarios={"deposit"}, store="postgres")
    assert [row.guard for row in rows] == ["unsafe", "row-lock", "advisory-lock", "atomic-update", "serializable"]
    assert {row.guard for row in select(scenarios={"checkout"}, store="postgres")} >= {"advisory-semaphore"}


def test_the_postgres_store_needs_a_database_url(capsys):
    assert main(["compare", "--store", "postgres"]) == 2
    assert "--database-url" in capsys.readouterr().err
    assert main(["sweep", "--store", "postgres"]) == 2
    assert "--database-url" in capsys.readouterr().err


@pytest.mark.e2e
@pytest.mark.slow
def test_a_sweep_of_serializable_on_a_fleet_counts_its_retries(database_url, tmp_path):
    flags = ["--store", "postgres", "--database-url", database_url, "--workers", "2", "--keys", "hot"]
    levels = ["--guards", "serializable", "--users", "1,2,4", "--repeat", "1", "--duration", "2", "--warmup", "1"]
    assert main(["sweep", *flags, *levels, "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert (results["store"], results["workers"]) == ("postgres", 2)
    (series,) = results["series"]
    points = [point for level in series["levels"] for point in level["repeats"]]
    assert len(points) == 3 and all(point["completed"] > 0 for point in points)
    assert all(point["server"]["lost_updates"] == 0 for point in points)
    assert any(point["server"]["serialization_retries"] > 0 for point in points)  # 4 users on one row conflict
