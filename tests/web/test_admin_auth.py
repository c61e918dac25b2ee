"""Admin routes: open on loopback without a token, bearer token when one is set,
and a token made by `bankapp serve` when bound beyond loopback."""

import pytest

from bankapp import cli
from bankapp.server import launcher
from bankapp.settings import load
from bankapp.web.admin_auth import is_loopback, token_for_binding

ADMIN_CALLS = [
    ("get", "/admin/config", None),
    ("patch", "/admin/config", {"race_window_ms": 3}),
    ("post", "/admin/reset", None),
    ("post", "/admin/break-deadlocks", None),
    ("post", "/admin/explore", {"scenario": "deposit", "guard": "lock"}),
    ("get", "/admin/no-such-route", None),
]


@pytest.fixture
def guarded(make_app):
    return make_app(race_window_ms=0, admin_token="s3cret").test_client()


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_without_a_token_set_admin_is_open_on_loopback(client, method, path, body):
    response = getattr(client, method)(path, json=body)
    assert response.status_code in {200, 404}


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_without_a_token_set_admin_refuses_clients_beyond_loopback(client, method, path, body):
    response = getattr(client, method)(path, json=body, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert "loopback" in response.json["detail"]
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic czNjcmV0", "s3cret", "Token s3cret"],
    ids=["absent", "empty", "no-token", "blank-token", "basic", "bare", "other-scheme"],
)
def test_with_a_token_set_a_missing_bearer_is_a_401_with_a_challenge(guarded, method, path, body, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = getattr(guarded, method)(path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("token", ["wrong", "s3cre", "s3cret2", "S3CRET"])
def test_with_a_token_set_a_wrong_one_is_a_403_and_changes_nothing(guarded, token):
    before = guarded.get("/admin/config", headers={"Authorization": "Bearer s3cret"}).json
    response = guarded.patch("/admin/config", json={"guard": "lock"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers
    assert guarded.get("/admin/config", headers={"Authorization": "Bearer s3cret"}).json == before


@pytest.mark.parametrize("remote", ["127.0.0.1", "192.0.2.7"])
def test_with_the_right_token_admin_works_from_anywhere(guarded, remote):
    auth = {"Authorization": "bearer s3cret"}  # the scheme is case-insensitive
    response = guarded.patch(
        "/admin/config", json={"guard": "lock"}, headers=auth, environ_base={"REMOTE_ADDR": remote}
    )
    assert response.status_code == 200
    assert response.json["deposit_guard"] == "lock"
    assert response.json["admin_token"] == "set"  # never the token itself


def test_a_token_guards_admin_only(guarded):
    assert guarded.get("/healthz").status_code == 200
    assert guarded.post("/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200


def test_unauthenticated_bodies_are_not_even_parsed(guarded):
    response = guarded.patch("/admin/config", data="{broken", content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_binding_beyond_loopback_without_a_token_makes_a_random_one():
    config, token = token_for_binding(load({"host": "0.0.0.0"}))
    assert token and len(token) >= 40 and config.admin_token == token
    _, other = token_for_binding(load({"host": "0.0.0.0"}))
    assert other != token


@pytest.mark.parametrize(
    "settings", [{"host": "127.0.0.1"}, {"host": "::1"}, {"host": "0.0.0.0", "admin_token": "mine"}]
)
def test_no_token_is_made_on_loopback_or_when_one_is_given(settings):
    config, token = token_for_binding(load(settings))
    assert token is None
    assert config.admin_token == settings.get("admin_token")


def test_serve_prints_the_made_token_once_and_serves_with_it(monkeypatch, capsys):
    served = []
    monkeypatch.setattr(launcher, "serve", served.append)
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 0
    (config,) = served
    out = capsys.readouterr().out
    assert out.count(config.admin_token) == 1
    assert f"Authorization: Bearer {config.admin_token}" in out


def test_serve_on_loopback_prints_no_token(monkeypatch, capsys):
    served = []
    monkeypatch.setattr(launcher, "serve", served.append)
    assert cli.main(["serve"]) == 0
    assert served[0].admin_token is None
    assert "Bearer" not in capsys.readouterr().out
