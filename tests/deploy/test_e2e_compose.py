"""docker-compose.yml's topology, started without containers: the same commands and environment, on loopback.

Read from the compose file (tests/deploy/compose.py): the app's `bankapp serve`
command with its environment, bound to 127.0.0.1 on a free port instead of
0.0.0.0:8000, on a database of its own on this machine's PostgreSQL instead
of the `postgres` service; nginx with the proxy's template rendered from the
proxy's environment; Locust's master and two workers with their commands,
made headless for a few seconds (`--expect-workers 2`) and given ports of
their own. Every process is bounded in time and stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from bankapp.cli import main as bankapp_main
from bankapp.compare.locust_runs import project_locustfile
from bankapp.postgres.counters import FLUSH_EVERY
from bankapp.server.processes import stop_group, stop_process

from ..live import LiveServer
from ..pg import ADMIN_URL
from ..scrape import samples, value
from . import compose
from .test_compose import nginx_or_skip

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(300)]

TOKEN = "e2e-compose-token"
RUN_SECONDS = 5
USERS = 16
RUN_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nginx:
    """nginx with the proxy's template rendered from `environment`, listening on `NGINX_PORT`, stopped by PID.
    `logged` is its error log once stopped."""

    def __init__(self, environment: dict[str, str]):
        binary = nginx_or_skip()  # first: a skip after the log was opened left the file to the next test's warning
        self.url = f"http://127.0.0.1:{environment['NGINX_PORT']}"
        self.logged = ""
        self.prefix = compose.render_nginx(environment)
        self._log = (self.prefix / "nginx.log").open("w")
        command = compose.nginx_command(binary, self.prefix, "-g", "daemon off;")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def __enter__(self) -> Nginx:
        deadline = time.monotonic() + 30
        while self.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", urlsplit(self.url).port), 1):
                return self
            time.sleep(0.1)
        self.__exit__()
        pytest.fail(f"nginx did not listen within 30 s (exit code {self.process.poll()}): {self.logged[-2000:]}")

    def __exit__(self, *exc_info) -> None:
        stop_process(self.process)
        self._log.close()
        self.logged = (self.prefix / "nginx.log").read_text()
        shutil.rmtree(self.prefix, ignore_errors=True)


class Lab:
    """The running topology: `services` as interpolated, `app` (a LiveServer), `proxy` (nginx's URL)."""

    def __init__(self, services: dict, app: LiveServer, proxy: str):
        self.services, self.app, self.proxy = services, app, proxy
        self.app_port = urlsplit(app.url).port

    def admin(self, method: str, path: str, token: str | None = TOKEN, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.proxy + path, headers=headers, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def lab(databases):
    services = compose.load({"BANKAPP_ADMIN_TOKEN": TOKEN})["services"]
    nginx_or_skip()

    # the app: its command, bound to loopback on a free port, on a database of the test's own
    argv = compose.argv(services["app"])
    assert argv[:2] == ["bankapp", "serve"]
    flags = compose.replace_option(compose.replace_option(argv[2:], "--host", "127.0.0.1"), "--port", "0")
    environment = {**services["app"]["environment"], "BANKAPP_DATABASE_URL": databases.create()}
    loopback = compose.Loopback(services, {})
    with LiveServer(*loopback.args(flags), env=loopback.environment(environment), startup_timeout=90) as app:
        # the proxy: the template rendered from the proxy's environment, pointed at the app, on a free port
        loopback = compose.Loopback(services, {"app": urlsplit(app.url).port})
        proxy_environment = loopback.environment(services["proxy"]["environment"])
        proxy_environment["NGINX_PORT"] = str(free_port())
        with Nginx(proxy_environment) as proxy:
            yield Lab(services, app, proxy.url)
    # no upstream error all along (a 502 from a kept-alive connection gunicorn closed, a refused connect)
    # (a client's own fault, such as a body over the limit, is logged as an error too: not counted)
    failures = [
        line
        for line in proxy.logged.splitlines()
        if re.search(r"\[(crit|alert|emerg)\]", line) or ("[error]" in line and "upstream" in line)
    ]
    assert not failures, failures


def test_the_proxy_serves_the_dashboard_its_assets_and_the_api(lab):
    page = requests.get(lab.proxy + "/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert any("uPlot" in asset for asset in assets), assets
    for asset in assets:  # uPlot's script is larger than nginx's memory buffers: it goes through temp/
        answer = requests.get(lab.proxy + asset, timeout=10)
        assert answer.status_code == 200 and answer.content == requests.get(lab.app.url + asset, timeout=10).content
    served = requests.get(lab.proxy + "/threads", timeout=10)
    assert served.status_code == 200 and "X-Served-By" in served.headers


def test_admin_routes_want_the_compose_token_through_the_proxy(lab):
    assert lab.admin("PATCH", "/admin/config", token=None, json={"race_window_ms": 1}).status_code == 401
    assert lab.admin("PATCH", "/admin/config", token="wrong", json={"race_window_ms": 1}).status_code == 403
    changed = lab.admin("PATCH", "/admin/config", json={"race_window_ms": 1})
    assert changed.status_code == 200 and changed.json()["race_window_ms"] == 1


def test_the_proxy_refuses_a_body_over_the_limit_as_bankapp_would(lab):
    body, headers = b"0" * (1024 * 1024 + 1), {"Content-Type": "application/json"}
    at_proxy = requests.post(lab.proxy + "/accounts/acc-00/deposit", data=body, headers=headers, timeout=10)
    at_app = requests.post(lab.app.url + "/accounts/acc-00/deposit", data=body, headers=headers, timeout=10)
    assert at_proxy.status_code == at_app.status_code == 413
    assert at_proxy.headers["Content-Type"] == at_app.headers["Content-Type"] == "application/problem+json"
    assert at_proxy.json()["type"] == at_app.json()["type"]
    assert "1 MiB" in at_proxy.json()["detail"]


def test_the_proxy_says_bankapp_is_not_answering_as_a_problem():
    services = compose.load()["services"]
    environment = compose.Loopback(services, {"app": free_port()}).environment(services["proxy"]["environment"])
    with Nginx({**environment, "NGINX_PORT": str(free_port())}) as proxy:
        answer = requests.get(proxy.url + "/healthz", timeout=10)
    assert answer.status_code == 502 and answer.headers["Content-Type"] == "application/problem+json"
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["status"] == 502 and "not answering" in answer.json()["detail"]
    assert "connect() failed" in proxy.logged


def connections_to(port: int) -> int:
    """Established TCP connections whose far end is `port`: each client of the server there, counted once."""
    return sum(
        1
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port
    )


def test_slow_clients_wait_at_the_proxy_and_never_reach_bankapp(lab):
    """40 clients stall mid-request at the proxy: half in their headers, half in their body. bankapp sees
    none of them (no new connection to its port), and answers everyone else through the proxy."""
    time.sleep(3)  # gunicorn closes connections idle 2 s, nginx its own idle ones after 1 s: a quiet start
    before = connections_to(lab.app_port)
    port = urlsplit(lab.proxy).port
    stalled = []
    try:
        for i in range(40):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                client.sendall(
                    b"POST /accounts/acc-00/deposit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 13\r\n\r\n{"amo'
                )
            else:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            stalled.append(client)
        time.sleep(1)
        during = connections_to(lab.app_port)
        healthy = requests.get(lab.proxy + "/healthz", timeout=5)
    finally:
        for client in stalled:
            client.close()
    assert healthy.status_code == 200
    assert during <= before + 2, (before, during)  # at most our own /healthz, on a new or kept connection
    balance = requests.get(lab.app.url + "/accounts/acc-00", timeout=10).json()["balance"]
    assert balance == requests.get(lab.proxy + "/accounts/acc-00", timeout=10).json()["balance"]


def locust_argv(service: dict, loopback: compose.Loopback) -> list[str]:
    """The service's `locust` command, run by this Python, with the project's locustfile installed here."""
    argv = loopback.args(compose.argv(service))
    assert argv[0] == "locust"
    argv = compose.replace_option(argv, "-f", str(project_locustfile()))  # the file the image links there
    return [sys.executable, "-m", "locust", *argv[1:]]


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
def test_a_locust_master_and_two_workers_deliver_the_verdict(lab, tmp_path):
    services = lab.services
    assert lab.admin("PATCH", "/admin/config", json={"deposit_guard": "row-lock"}).status_code == 200
    master_port = free_port()
    loopback = compose.Loopback(services, {"app": lab.app_port, "master": master_port})
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    headless = [
        *("--headless", "--expect-workers", "2", "--expect-workers-max-wait", "60"),
        *("-u", str(USERS), "-r", str(USERS), "-t", f"{RUN_SECONDS}s", "--master-bind-port", str(master_port)),
        *("--only-summary", "--json-file", str(tmp_path / "stats"), "--verdict-json", str(tmp_path / "verdict.json")),
        *("--fail-on-anomaly", "DepositUser"),
    ]
    worker = [*locust_argv(services["worker"], loopback), "--master-port", str(master_port)]
    commands = {
        "master": [*locust_argv(services["master"], loopback), *headless],
        "worker-1": worker,
        "worker-2": worker,
    }
    processes, logs = {}, {}
    try:
        for name, command in commands.items():
            service = services["master" if name == "master" else "worker"]
            logs[name] = (tmp_path / f"{name}.log").open("w")
            processes[name] = subprocess.Popen(
                command,
                cwd=tmp_path,
                env={**environment, **loopback.environment(service.get("environment", {}))},
                stdout=logs[name],
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )
        try:
            processes["master"].wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the master did not finish within {RUN_TIMEOUT} s")
        for name in ("worker-1", "worker-2"):  # the master tells its workers to quit when it does
            with contextlib.suppress(subprocess.TimeoutExpired):
                processes[name].wait(30)
    finally:
        for process in processes.values():
            stop_group(process)
        for log in logs.values():
            log.close()
    output = {name: (tmp_path / f"{name}.log").read_text() for name in commands}
    assert processes["master"].returncode == 0, output["master"][-3000:]
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["ok"] is True and verdict["workers"] == 2, verdict
    assert "workers sent their final counts" not in output["master"], "both workers reported at the end"
    for name in ("worker-1", "worker-2"):
        assert processes[name].returncode == 0, output[name][-3000:]

    deposits = verdict["deposits"]
    assert deposits["acknowledged"] > 0 and deposits["lost_updates"] == 0
    # each gunicorn worker adds its counts to the database about once a second (FLUSH_EVERY): wait for them
    deadline = time.monotonic() + 10 + 2 * FLUSH_EVERY
    while True:
        stats = requests.get(lab.proxy + "/stats", timeout=10).json()
        flushed = stats["deposits"]["acknowledged_amount"] >= deposits["acknowledged_amount"]
        if (flushed and len(stats["workers"]["pids"]) >= 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    unanswered = deposits["attempted_amount"] - deposits["acknowledged_amount"]
    assert 0 <= stats["deposits"]["acknowledged_amount"] - deposits["acknowledged_amount"] <= unanswered
    assert len(stats["workers"]["pids"]) >= 2, "several gunicorn workers served the load"
    scraped = samples(requests.get(lab.proxy + "/metrics", timeout=10).text)
    assert value(scraped, "bankapp_deposits_acknowledged_total") >= deposits["acknowledged"]


def test_the_health_checks_of_the_dockerfile_and_the_compose_file_pass(lab):
    (healthcheck,) = [c for c in compose.dockerfile_instructions() if c.cmd == "HEALTHCHECK"]
    check = list(healthcheck.value[1:])  # after CMD
    assert check[0] == "python"
    environment = {**os.environ, "BANKAPP_PORT": str(lab.app_port)}
    assert subprocess.run([sys.executable, *check[1:]], env=environment, timeout=30).returncode == 0
    closed = {**environment, "BANKAPP_PORT": str(free_port())}
    failed = subprocess.run([sys.executable, *check[1:]], env=closed, capture_output=True, timeout=30)
    assert failed.returncode != 0

    test = lab.services["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    if not shutil.which("pg_isready"):
        pytest.skip("pg_isready is not installed")
    server = urlsplit(ADMIN_URL)
    argv = compose.replace_option(test[1:], "--host", server.hostname or "127.0.0.1")
    ready = subprocess.run([*argv, "--port", str(server.port or 5432)], capture_output=True, text=True, timeout=30)
    assert ready.returncode == 0 and "accepting connections" in ready.stdout


def test_bankapp_urls_print_pages_that_answer(lab, capsys):
    port = urlsplit(lab.proxy).port
    assert bankapp_main(["urls", "--host", "127.0.0.1", "--port", str(port)]) == 0
    printed = re.findall(r"http://\S+", capsys.readouterr().out)
    pages = [url for url in printed if f":{port}/" in url]
    assert len(pages) == 3  # the dashboard, the API docs, the metrics
    for url in pages:
        assert requests.get(url, timeout=10).status_code == 200, url
