"""Fixtures every layer's tests share: no developer's BANKAPP_* variable, an app and its client and lab (the web and
server tests), and PostgreSQL databases of the tests' own. Each folder's conftest.py adds its own."""

import pytest

from bankapp import create_app


@pytest.fixture
def make_app():
    """Build an app with settings overrides: `make_app(deposit_guard="lock")`."""

    def build(**settings):
        app = create_app(settings)
        app.config["TESTING"] = True
        return app

    return build


@pytest.fixture
def app(make_app):
    return make_app(race_window_ms=0)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def lab(app):
    return app.extensions["bankapp"]


@pytest.fixture(autouse=True)
def _no_bankapp_environment(monkeypatch):
    """A developer's BANKAPP_* variables must not change what tests see."""
    import os

    for key in list(os.environ):
        if key.startswith("BANKAPP_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def databases():
    """PostgreSQL for the tests (see `tests/pg.py`): skipped without one, except under CI=true."""
    from .pg import reachable_or_skip

    found = reachable_or_skip()
    yield found
    found.drop_all()


@pytest.fixture
def database_url(databases):
    """A new, empty database of this test's own."""
    return databases.create()


def pytest_collection_modifyitems(config, items):
    """Under xdist (pyproject's `-n ... --dist loadgroup`) a test file's tests stay together on one worker, so the
    servers its module-scoped fixtures start are started once; a test that must not run beside others of its kind
    (a PostgreSQL fleet: several pools) names a shared `xdist_group` itself, and one that may run anywhere names its
    own. xdist reads the groups after this hook (its own is `trylast`)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
