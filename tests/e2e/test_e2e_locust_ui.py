"""Locust's web UI for the lab, for real: the class picker, plain help texts, the verdict tab.

A real gunicorn and a real `locust` with its web UI on a free loopback port;
runs are started and stopped through the UI's own HTTP API (`POST /swarm`,
`POST /stop`), as the START and STOP buttons do, and the verdict is read
from `/bankapp/verdict` and from the rows of the tab. Bounded in time; the
Locust process is stopped by PID.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import requests

from bankapp.server.processes import stop_process
from loadtests.verdict import render

from ..live import live_server
from .test_e2e_locust import LOCUSTFILE, free_port

pytestmark = pytest.mark.e2e

RUN_SECONDS = 3
CLASSES = ["AuditUser", "DepositUser", "TransferUser"]


@pytest.fixture(scope="module")
def server():
    with live_server("--guard", "unsafe", "--transfer-policy", "ordered", "--race-window-ms", "1") as running:
        yield running


@pytest.fixture
def web_ui(server, tmp_path):
    """`locust` with its web UI, started in an empty folder: no locust.conf or pyproject.toml to lean on."""
    port = free_port()
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", server.url]
    command += ["--web-host", "127.0.0.1", "--web-port", str(port)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    log = (tmp_path / "locust.log").open("w")
    process = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "locust.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process)
        log.close()


def template_args(url: str) -> dict:
    page = requests.get(url + "/", timeout=10).text
    return json.loads(re.search(r"window\.templateArgs = (.*)", page).group(1))


def run_through_the_ui(url: str, server) -> dict:
    """START with three classes ticked, wait, STOP; what `/bankapp/verdict` then says."""
    form = {"user_count": 12, "spawn_rate": 12, "host": server.url, "user_classes": CLASSES}
    started = requests.post(url + "/swarm", data=form, timeout=10).json()
    assert started["success"] is True, started
    assert started["user_classes"] == CLASSES  # the picker's choice, not every class
    assert requests.get(url + "/bankapp/verdict", timeout=10).json()["running"] is True
    time.sleep(RUN_SECONDS)
    assert requests.post(url + "/stop", timeout=60).json()["success"] is True
    answer = requests.get(url + "/bankapp/verdict", timeout=10).json()
    assert answer["running"] is False and answer["verdict"] is not None, answer
    assert answer["text"] == render(answer["verdict"])
    return answer


def tab_rows(url: str) -> tuple[list[dict], dict]:
    stats = requests.get(url + "/stats/requests", timeout=10).json()
    tab = [entry for entry in stats["extended_stats"] if entry["key"] == "bankapp-verdict"]
    return tab[0]["data"], stats


def test_the_ui_has_the_class_picker_a_verdict_tab_and_help_without_format_strings(web_ui):
    args = template_args(web_ui)
    assert args["show_userclass_picker"] is True
    assert "DepositUser" in args["available_user_classes"]
    assert {"title": "bankapp verdict", "key": "bankapp-verdict"} in args["extended_tabs"]
    helps = {name: option["help_text"] for name, option in args["extra_options"].items()}
    assert helps["accounts"].endswith("[acc-00,acc-01,acc-02,acc-03]")
    assert not [name for name, text in helps.items() if "%(" in text], helps
    rows, _ = tab_rows(web_ui)
    assert rows == [{"part": "", "says": "no verdict yet: it appears here when a run stops"}]


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_a_run_started_and_stopped_in_the_ui_shows_its_verdict_and_counts_its_anomalies(web_ui, server):
    server.configure(guard="unsafe", transfer_policy="ordered")
    answer = run_through_the_ui(web_ui, server)
    verdict = answer["verdict"]
    assert verdict["ok"] is False
    # the lost deposits are the deposits' anomaly: transfers under `ordered` did nothing wrong
    assert {sentence.split(":")[0] for sentence in verdict["anomalies"]} == {"deposits"}, verdict["anomalies"]
    assert verdict["transfers"]["total_conserved"] is True
    rows, stats = tab_rows(web_ui)
    shown = [line for line in answer["text"].splitlines() if line and not line.startswith("=")]
    assert [(row["part"] + " " * 11)[:11] + row["says"] for row in rows] == [line.ljust(11) for line in shown]
    assert rows[-1] == {"part": "verdict", "says": f"FAILED: {len(verdict['anomalies'])} check(s) failed"}
    # the header's failure ratio is rounded to a whole percent: it must not read 0 %
    assert round(100 * stats["fail_ratio"]) >= 1, stats["fail_ratio"]
    # one failure per lost one-cent deposit, filed with the anomaly's sentence
    lost = verdict["deposits"]["lost_updates"]
    filed = {error["error"]: error["occurrences"] for error in stats["errors"] if error["name"] == "verdict: deposits"}
    assert [count for error, count in filed.items() if "lost" in error] == [lost], filed
    assert lost > 0

    # flip the guard and run again: the tab follows the new run
    server.configure(guard="rlock", transfer_policy="ordered")
    answer = run_through_the_ui(web_ui, server)
    assert answer["verdict"]["ok"] is True, answer["verdict"]["anomalies"]
    rows, stats = tab_rows(web_ui)
    assert rows[-1] == {"part": "verdict", "says": "OK: every check passed"}
    assert not [error for error in stats["errors"] if error["name"].startswith("verdict:")]
