"""The postgres store when the database is not there: refused at start, 503 at run time, back when it is.

At start a bad `database_url` is refused before gunicorn starts: exit 2,
a message naming the setting, no traceback. At run time the backends are
terminated (`pg_terminate_backend`, what an administrator or a failover
does) or the database's port is closed (the plug pulled): requests answer
503 problems, never 500s, `/healthz` says the store is down, and once the
database is back the service answers again, with nothing acknowledged lost.
"""

import os
import subprocess
import sys

import pytest

from bankapp.postgres import prepare
from bankapp.settings import load
from bankapp.web import create_app

from ..pg import Plug, until

pytestmark = pytest.mark.postgres


def serve(*flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BANKAPP_")}
    return subprocess.run(
        [sys.executable, "-m", "bankapp", "serve", "--port", "0", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **(env or {})},
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--store", "postgres"), "database_url: the postgres store needs"),
        (("--deposit-guard", "row-lock"), "deposit_guard: row-lock is one of the database's own tools"),
        (("--checkout-guard", "advisory-lock"), "checkout_guard: advisory-lock is one of the database's own tools"),
        (("--store", "postgres", "--database-url", "postgresql://nobody:secret@127.0.0.1:1/bank"), "database_url"),
        (("--store", "postgres", "--database-url", "not a url at all"), "database_url"),
    ],
    ids=["no-url", "row-lock-in-memory", "advisory-in-memory", "closed-port", "garbage"],
)
def test_serve_refuses_a_bad_store_at_start_naming_the_setting(flags, message):
    result = serve(*flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "secret" not in result.stderr  # the password is never shown


def test_serve_refuses_a_database_that_does_not_exist(databases):
    from ..pg import ADMIN_URL, with_database

    result = serve("--store", "postgres", "--database-url", with_database(ADMIN_URL, "bankapp_no_such_database"))
    assert result.returncode == 2
    assert "database_url: cannot use the database" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_variable_works_too(databases):
    result = serve(env={"BANKAPP_STORE": "postgres", "BANKAPP_DATABASE_URL": "postgresql://127.0.0.1:1/x"})
    assert result.returncode == 2 and "database_url: cannot use the database at postgresql://127.0.0.1:1/x" in (
        result.stderr
    )


def make_client(url: str, **settings):
    config = load({"store": "postgres", "database_url": url, "threads": 8, "race_window_ms": 0, **settings}, environ={})
    app = create_app(prepare(config, set(settings) | {"race_window_ms"}))
    return app, app.test_client()


def test_terminated_backends_cost_answers_never_the_service(databases, database_url):
    app, client = make_client(database_url, deposit_guard="row-lock")
    acknowledged = 0
    for _ in range(5):
        assert client.post("/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200
        acknowledged += 1
    assert databases.terminate(database_url) >= 1
    statuses = []
    for _ in range(20):
        response = client.post("/accounts/acc-00/deposit", json={"amount": 1})
        statuses.append(response.status_code)
        if response.status_code == 200:
            acknowledged += 1
        else:
            assert response.status_code == 503 and response.mimetype == "application/problem+json", response.json
            assert "lost the database" in response.json["detail"]
    assert 500 not in statuses and statuses[-1] == 200, statuses
    assert client.get("/accounts/acc-00").json["balance"] == 100_000 + acknowledged  # nothing acknowledged lost
    app.extensions["bankapp"].close()


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
def test_a_closed_port_is_a_store_down_and_the_service_comes_back(databases, database_url):
    plug = Plug(("127.0.0.1", 5432))
    app, client = make_client(plug.url(database_url), deposit_guard="atomic-update")
    try:
        assert client.post("/accounts/acc-01/deposit", json={"amount": 3}).status_code == 200
        plug.pull()
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json["type"].endswith("store-unavailable"), health.json
        assert health.json["store"] == "postgres" and health.headers["Retry-After"] == "1"
        deposit = client.post("/accounts/acc-01/deposit", json={"amount": 3})
        assert deposit.status_code == 503 and deposit.mimetype == "application/problem+json"
        assert client.get("/stats").status_code == 503
        plug.push()
        until(lambda: client.get("/healthz").status_code == 200)
        until(lambda: client.post("/accounts/acc-01/deposit", json={"amount": 3}).status_code == 200)
        assert client.get("/accounts/acc-01").json["balance"] == 100_006
    finally:
        plug.pull()
        app.extensions["bankapp"].close()
