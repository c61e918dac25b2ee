"""Flags, BANKAPP_* variables and defaults, checked in one place."""

import subprocess
import sys

import pytest

from bankapp import create_app
from bankapp.settings import SettingsError, load


def test_defaults_are_the_specs():
    config = load(environ={})
    assert (config.deposit_guard, config.checkout_guard, config.transfer_policy) == ("unsafe", "unsafe", "naive")
    assert (config.capacity, config.max_waiting, config.admission_timeout_ms) == (8, 8, 0)
    assert (config.race_window_ms, config.lock_timeout_ms, config.deadlock_check_ms) == (1.0, 2000, 50)
    assert (config.service_time_ms, config.gateway_capacity) == (50, 8)
    assert (config.accounts, config.initial_balance) == (16, 100_000)
    assert (config.threads, config.workers, config.host, config.port) == (32, 1, "127.0.0.1", 8000)
    assert config.account_ids[0] == "acc-00" and config.account_ids[-1] == "acc-15"


def test_environment_then_flags():
    environ = {"BANKAPP_DEPOSIT_GUARD": "lock", "BANKAPP_RACE_WINDOW_MS": "3", "UNRELATED": "x"}
    config = load(environ=environ)
    assert config.deposit_guard == "lock" and config.race_window_ms == 3
    config = load({"deposit_guard": "rlock"}, environ=environ)
    assert config.deposit_guard == "rlock" and config.race_window_ms == 3


def test_guard_shorthand_and_specific_guard_wins():
    config = load({"guard": "lock", "checkout_guard": "semaphore"}, environ={})
    assert (config.deposit_guard, config.checkout_guard) == ("lock", "semaphore")


def test_lock_timeout_none():
    assert load({"lock_timeout_ms": "none"}, environ={}).lock_timeout() is None
    assert load({"lock_timeout_ms": "250"}, environ={}).lock_timeout() == 0.25


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workers": "2"}, "workers: 2 workers cannot share the memory store"),
        ({"deposit_guard": "mutex"}, "deposit_guard: Input should be"),
        ({"deposit_permits": "many"}, "deposit_permits: Input should be a valid integer"),
        ({"race_window_ms": "-1"}, "race_window_ms: Input should be greater than or equal to 0"),
        ({"port": "70000"}, "port: Input should be less than or equal to 65535"),
    ],
)
def test_bad_settings_are_refused_with_a_message_naming_them(overrides, message):
    with pytest.raises(SettingsError, match=message):
        load(overrides, environ={})


def test_factory_takes_overrides_and_refuses_bad_ones():
    assert create_app({"deposit_guard": "lock"}).extensions["bankapp"].config().deposit_guard == "lock"
    with pytest.raises(SettingsError):
        create_app({"deposit_guard": "mutex"})


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bankapp", *args], capture_output=True, text=True, timeout=60, env=env)


def test_serve_help_lists_every_setting_with_its_variable():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for flag in ("--deposit-guard", "--deposit-permits", "--race-window-ms", "--lock-timeout-ms", "--workers"):
        assert flag in result.stdout
    assert "BANKAPP_RACE_WINDOW_MS" in result.stdout


def test_serve_refuses_several_workers_with_the_memory_store_and_says_why():
    result = run_cli("serve", "--workers", "2")
    assert result.returncode == 2
    assert "each process would have its own bank and its own locks" in result.stderr


def test_serve_refuses_a_bad_variable_naming_it():
    import os

    result = run_cli("serve", env={**os.environ, "BANKAPP_DEPOSIT_PERMITS": "zero"})
    assert result.returncode == 2
    assert "deposit_permits" in result.stderr


def test_an_empty_variable_is_unset_not_forever():
    """Found in review: BANKAPP_LOCK_TIMEOUT_MS= silently meant 'wait forever'."""
    assert load(environ={"BANKAPP_LOCK_TIMEOUT_MS": ""}).lock_timeout_ms == 2000
    assert load(environ={"BANKAPP_LOCK_TIMEOUT_MS": "none"}).lock_timeout_ms is None


def test_a_bad_guard_shorthand_is_named_as_guard():
    with pytest.raises(SettingsError, match=r"^guard: Input should be"):
        load({"guard": "mutex"}, environ={})


def test_database_guards_are_refused_with_the_memory_store_naming_the_setting():
    with pytest.raises(SettingsError, match="deposit_guard: row-lock is one of the database's own tools"):
        load({"deposit_guard": "row-lock"}, environ={})
    with pytest.raises(SettingsError, match="checkout_guard: advisory-semaphore"):
        load({"checkout_guard": "advisory-semaphore"}, environ={})
    with pytest.raises(SettingsError, match="database_url: the postgres store needs"):
        load({"store": "postgres"}, environ={})


def test_a_patch_to_a_database_guard_on_the_memory_store_is_a_422_naming_it(client):
    response = client.patch("/admin/config", json={"deposit_guard": "atomic-update"})
    assert response.status_code == 422
    assert response.json["detail"].startswith("deposit_guard: atomic-update is one of the database's own tools")
    assert client.get("/admin/config").json["deposit_guard"] == "unsafe"  # nothing changed


def test_the_database_password_is_never_shown(make_app):
    from bankapp.settings import hide_password

    assert hide_password("postgresql://bank:s3cret@db:5432/bankapp") == "postgresql://bank:***@db:5432/bankapp"
    assert hide_password("host=db password=s3cret user=bank") == "host=db password=*** user=bank"
    assert hide_password("postgresql://db/bank?password=s3cret") == "postgresql://db/bank?password=***"
    assert hide_password("postgresql://bank@db/bankapp") == "postgresql://bank@db/bankapp"


def test_workers_above_one_are_allowed_with_the_postgres_store():
    config = load({"store": "postgres", "database_url": "postgresql://db/bank", "workers": "4"}, environ={})
    assert (config.workers, config.store) == (4, "postgres")
    assert config.public()["database_url"] == "postgresql://db/bank"


def test_the_switch_interval_is_the_interpreters_and_a_patch_changes_it(client):
    """`switch_interval_us` is CPython's `sys.setswitchinterval`, for the whole process."""
    import sys

    assert sys.getswitchinterval() == pytest.approx(0.005)  # the app applied the default: CPython's own
    try:
        response = client.patch("/admin/config", json={"switch_interval_us": 20})
        assert response.status_code == 200
        assert response.get_json()["switch_interval_us"] == 20
        assert sys.getswitchinterval() == pytest.approx(0.000020)
    finally:
        sys.setswitchinterval(0.005)


@pytest.mark.parametrize("value", [0, -5, "fast", 2_000_000])
def test_a_bad_switch_interval_is_refused_and_changes_nothing(client, value):
    import sys

    response = client.patch("/admin/config", json={"switch_interval_us": value})
    assert response.status_code == 422
    assert "switch_interval_us" in response.get_json()["detail"]
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_log_level_is_fixed_at_start(client):
    response = client.patch("/admin/config", json={"log_level": "debug"})
    assert response.status_code == 422
    assert "log_level: can only be set at start" in response.get_json()["detail"]


def test_serve_help_lists_the_switch_interval_and_the_log_level():
    result = subprocess.run(
        [sys.executable, "-m", "bankapp", "serve", "--help"], capture_output=True, text=True, timeout=30
    )
    assert "--switch-interval-us" in result.stdout and "sys.setswitchinterval" in result.stdout
    assert "--log-level" in result.stdout
