"""Every user class at once, for real: safe settings pass, each unsafe one fails on its own scenario only.

One Locust run of a few seconds per setting, every class together, so every
pair of classes meets in each run; the verdict must blame exactly the
scenario the setting makes unsafe (the hand-made pairs are in
`test_verdict_mix.py`).
"""

from __future__ import annotations

import pytest

from ..live import live_server
from .test_e2e_locust import run_locust

pytestmark = pytest.mark.e2e

SAFE = {"deposit_guard": "rlock", "deposit_permits": 1, "checkout_guard": "semaphore", "transfer_policy": "ordered"}
#: Each setting with the scenario its anomalies belong to; the others must say nothing.
SETTINGS = {
    "safe": ({}, None),
    "deposit_guard unsafe": ({"deposit_guard": "unsafe"}, "deposits"),
    "checkout_guard unsafe": ({"checkout_guard": "unsafe"}, "checkout"),
    "transfer_policy unsafe": ({"transfer_policy": "unsafe"}, "transfers"),
    "transfer_policy release-first": ({"transfer_policy": "release-first"}, "transfers"),
    "transfer_policy naive": ({"transfer_policy": "naive"}, "transfers"),
}
#: Every checkout on the flash sale, so that it sells out within the run and an unguarded one oversells.
EXTRA = ("--skus", "flash-sale")


@pytest.fixture(scope="module")
def server():
    """Wide race windows and a quick gateway: every race has room, even on a loaded 2-core machine.

    With 5 ms between each read and its write, an unguarded deposit, stock
    reservation or transfer loses writes within the first second; a 5 ms
    gateway sells the flash sale's 100 units out within the run.
    """
    with live_server("--race-window-ms", "5", "--service-time-ms", "5") as running:
        yield running


@pytest.mark.parametrize("setting", SETTINGS, ids=list(SETTINGS))
def test_every_class_together_blames_each_anomaly_on_its_cause(server, tmp_path, setting):
    changes, scenario = SETTINGS[setting]
    server.configure(**{**SAFE, **changes})
    run = run_locust(server, tmp_path, users_count=18, extra=EXTRA)  # no class named: every class runs
    verdict = run.verdict
    assert verdict is not None, run
    for section in ("deposits", "checkout", "transfers"):
        assert section in verdict, run
    assert verdict["deposits"]["acknowledged"] > 0 and verdict["checkout"]["admitted"] > 0, run
    assert verdict["transfers"]["committed"] > 0 and verdict["transfers"]["audits"] > 0, run
    blamed = {sentence.split(":")[0] for sentence in verdict["anomalies"]}
    # whoever wrote a balance (deposits, withdrawals, batches, transfer legs and rollbacks), the cents
    # the server names add up to its lost_updates, and only unguarded writers erase anything
    races = server.get("/debug/races").json()
    assert races["lost_updates"] == server.get("/stats").json()["deposits"]["lost_updates"], races
    assert (races["erasures"] > 0) == (setting in {"deposit_guard unsafe", "transfer_policy unsafe"}), races
    if scenario is None:
        assert verdict["ok"] is True, verdict["anomalies"]
        assert run.returncode == 0, run
    else:
        assert blamed == {scenario}, verdict["anomalies"]
        assert run.returncode == 1, run
