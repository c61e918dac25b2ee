"""Issue 19, item 11: any web page the instructor opens must not drive (or read) the lab.

A DNS-rebinding page reaches the server under its own name (`Host:
evil.example`), and a page of another origin can POST to `/admin/reset`
without a preflight. The server answers only the Host names it is reached
by, and refuses cross-site admin state changes that carry no admin token
(see `bankapp.web.admin_auth`).
"""

from __future__ import annotations

import pytest

from bankapp.settings import load

EVIL = "evil.example"


def deposit_one(client) -> int:
    return client.post("/accounts/acc-00/deposit", json={"amount": 1}).json["balance"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/stats", None),
        ("GET", "/", None),
        ("PATCH", "/admin/config", {"deposit_guard": "lock"}),
        ("POST", "/admin/reset", None),
        ("POST", "/accounts/acc-00/deposit", {"amount": 1}),
    ],
)
@pytest.mark.parametrize("host", [EVIL, f"{EVIL}:8000", "localhost.evil.example", "127.0.0.1.nip.io:8000"])
def test_a_foreign_host_is_a_421_problem_and_changes_nothing(client, lab, method, path, body, host):
    balance = deposit_one(client)
    response = client.open(path, method=method, json=body, headers={"Host": host})
    assert response.status_code == 421 and response.mimetype == "application/problem+json", response.data
    assert response.json["type"].endswith("unknown-host") and "--allowed-hosts" in response.json["detail"]
    assert lab.config().deposit_guard == "unsafe"
    assert client.get("/accounts/acc-00").json["balance"] == balance  # neither reset nor deposited


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:8000", "127.9.9.9", "[::1]:8000", "10.1.2.3:8000", "[fe80::1]"]
)
def test_loopback_names_and_ip_addresses_are_answered(client, host):
    assert client.get("/stats", headers={"Host": host}).status_code == 200


def test_the_bound_host_and_allowed_hosts_are_answered(make_app):
    client = make_app(host="bank.internal", allowed_hosts="lab.example, Room.Example.").test_client()
    for host in ("bank.internal:8000", "lab.example", "room.example:80", "ROOM.EXAMPLE"):
        assert client.get("/stats", headers={"Host": host}).status_code == 200, host
    assert client.get("/stats", headers={"Host": EVIL}).status_code == 421
    anyone = make_app(allowed_hosts="*").test_client()
    assert anyone.get("/stats", headers={"Host": EVIL}).status_code == 200


def test_allowed_hosts_is_a_setting_with_a_variable_and_fixed_at_start(client):
    assert load({}, environ={"BANKAPP_ALLOWED_HOSTS": "lab.example"}).allowed_hosts == "lab.example"
    assert client.get("/admin/config").json["allowed_hosts"] == ""
    refused = client.patch("/admin/config", json={"allowed_hosts": "*"})
    assert refused.status_code == 422 and "allowed_hosts" in refused.json["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": f"http://{EVIL}"},
        {"Origin": "http://localhost:9999"},  # another port is another origin
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    ],
)
def test_a_cross_site_admin_state_change_without_the_token_is_refused(client, lab, headers):
    """A page of another origin POSTing `text/plain` (no preflight) to the admin routes, on loopback."""
    balance = deposit_one(client)
    reset = client.post("/admin/reset", data="x", content_type="text/plain", headers=headers)
    assert reset.status_code == 403 and reset.json["type"].endswith("cross-site-admin"), reset.json
    patch = client.patch("/admin/config", json={"deposit_guard": "lock"}, headers=headers)
    assert patch.status_code == 403
    assert client.get("/accounts/acc-00").json["balance"] == balance and lab.config().deposit_guard == "unsafe"
    assert client.get("/admin/config", headers=headers).status_code == 200  # reading is no state change


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, a script, the CLI
        {"Origin": "http://localhost"},  # the dashboard, served by this server
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "none"},  # typed by the user
    ],
)
def test_same_site_admin_requests_keep_working(client, lab, headers):
    assert client.patch("/admin/config", json={"deposit_guard": "lock"}, headers=headers).status_code == 200
    assert lab.config().deposit_guard == "lock"
    assert client.post("/admin/reset", headers=headers).status_code == 200


def test_a_cross_site_admin_change_with_the_admin_token_is_allowed(make_app):
    client = make_app(admin_token="s3cret").test_client()
    headers = {"Origin": f"http://{EVIL}", "Sec-Fetch-Site": "cross-site"}
    assert client.post("/admin/reset", headers=headers).status_code == 401  # the token check comes first
    authorized = {**headers, "Authorization": "Bearer s3cret"}
    assert client.post("/admin/reset", headers=authorized).status_code == 200
    wrong = {**headers, "Authorization": "Bearer nope"}
    assert client.post("/admin/reset", headers=wrong).status_code == 403
