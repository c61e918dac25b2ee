"""The composition root: `bankapp.boot` reads the settings, prepares the store and picks the lab, and both labs
meet `LabLike`, the protocol the web service is typed against."""

import os
import subprocess
import sys

import psycopg
import pytest

from bankapp import boot
from bankapp.lab import Lab, LabLike
from bankapp.settings import SettingsError


@pytest.fixture(autouse=True)
def no_bankapp_variables(monkeypatch):
    for name in [name for name in os.environ if name.startswith("BANKAPP_")]:
        monkeypatch.delenv(name)


def test_flags_win_over_variables_which_win_over_defaults(monkeypatch):
    monkeypatch.setenv("BANKAPP_RACE_WINDOW_MS", "7")
    monkeypatch.setenv("BANKAPP_GUARD", "lock")
    config = boot.settings({"race_window_ms": 3})
    assert (config.race_window_ms, config.deposit_guard, config.checkout_guard) == (3, "lock", "lock")
    assert config.service_time_ms == boot.settings().service_time_ms  # untouched: the default
    assert boot.explicit_settings({"race_window_ms": 3}) == {"race_window_ms", "deposit_guard", "checkout_guard"}


def test_a_bad_setting_is_refused_by_name():
    with pytest.raises(SettingsError, match="race_window_ms"):
        boot.settings({"race_window_ms": "soon"})


def test_the_memory_store_gets_the_memory_lab_which_meets_the_protocol():
    lab = boot.build_lab(boot.settings())
    assert type(lab) is Lab
    assert isinstance(lab, LabLike)
    assert lab.bank.deposit("acc-00", 5) == lab.config().initial_balance + 5


@pytest.mark.postgres
def test_the_postgres_store_is_prepared_once_and_its_lab_meets_the_protocol(database_url, monkeypatch):
    from bankapp.postgres import PostgresLab

    monkeypatch.setenv("BANKAPP_DATABASE_URL", database_url)
    config = boot.settings({"store": "postgres", "race_window_ms": 4})
    with psycopg.connect(database_url) as conn:  # prepared: tables made, the chosen setting written
        (written,) = conn.execute("SELECT body FROM bankapp_settings").fetchone()
    assert written["race_window_ms"] == config.race_window_ms == 4
    lab = boot.build_lab(config)
    try:
        assert type(lab) is PostgresLab
        assert isinstance(lab, LabLike)
        lab.start()
        assert lab.health() == {"status": "ok", "store": "postgres"}
        assert lab.config().race_window_ms == 4
    finally:
        lab.close()


def test_the_package_root_and_the_lab_load_neither_flask_nor_psycopg():
    code = (
        "import sys, bankapp, bankapp.lab, bankapp.boot\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'werkzeug', 'gunicorn', 'psycopg'}))\n"
        "from bankapp import create_app\n"
        "print(create_app.__module__, 'flask' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines() == ["[]", "bankapp.web.app True"]


def test_the_package_root_names_only_create_app():
    import bankapp

    with pytest.raises(AttributeError, match="no attribute 'make_lab'"):
        bankapp.make_lab  # noqa: B018
