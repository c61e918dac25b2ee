"""A hostile tester against a real `bankapp serve`: the last framing breaks, `%2f`, JSON ambiguity, Host names.

Issue 19's web-level items, each the reproducer the issue gives, against a
real gunicorn (the hardened worker), on loopback. A bad request gets a 4xx
problem at once and changes nothing.
"""

from __future__ import annotations

import json
import socket

import pytest
import requests

from ..live import live_server, read_response

pytestmark = pytest.mark.e2e

HEAD = "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server():
    with live_server("--guard", "lock", "--race-window-ms", "0") as running:
        yield running


def balance(server, account: str) -> int:
    return server.get(f"/accounts/{account}").json()["balance"]


def send(server, data: bytes, half_close: bool = False, timeout: float = 10) -> tuple[int, dict, dict]:
    """`data` on a new connection (then a half-close, if asked); the answer's status, headers and JSON body."""
    with server.connect(timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        status, headers, body = read_response(sock)
    return status, headers, json.loads(body) if body else {}


def test_a_body_shorter_than_its_content_length_is_never_applied(server):
    """Item 4: `Content-Length: 100` and the 12 bytes `{"amount":1}`, then a half-close: 400, nothing applied."""
    before = balance(server, "acc-03")
    head = HEAD.format(path="/accounts/acc-03/deposit") + "Content-Length: 100\r\n\r\n"
    status, headers, body = send(server, head.encode() + b'{"amount":1}', half_close=True)
    assert status == 400 and headers["content-type"] == "application/problem+json", body
    assert body["type"].endswith("incomplete-body") and "12 of the 100 bytes" in body["detail"]
    assert balance(server, "acc-03") == before


def test_a_chunk_announced_over_one_mib_is_a_413_at_once(server):
    """Item 5: a chunk-size line of 2 MiB answers 413 on its own, without waiting for the 2 MiB (or the 5 s
    read deadline, which answered 408)."""
    before = balance(server, "acc-04")
    head = HEAD.format(path="/accounts/acc-04/deposit") + "Transfer-Encoding: chunked\r\n\r\n"
    status, _, body = send(server, head.encode() + b"200000\r\n{")
    assert status == 413 and body["type"].endswith("content-too-large"), body
    assert str(0x200000) in body["detail"]
    assert balance(server, "acc-04") == before


@pytest.mark.parametrize(
    "framing",
    [b'c\n{"amount":1}\n0\n\n', b'c\r\n{"amount":1}\n0\r\n\r\n', b'c\r\n{"amount":1}\r\n0\n\n'],
    ids=["lf-only", "lf-after-data", "lf-in-last-chunk"],
)
def test_lf_only_chunk_framing_is_a_400_at_once(server, framing):
    """Item 5: chunk lines ended by a bare LF are a malformed body, answered 400 when seen (not 408 after 5 s)."""
    before = balance(server, "acc-05")
    head = HEAD.format(path="/accounts/acc-05/deposit") + "Transfer-Encoding: chunked\r\n\r\n"
    status, headers, body = send(server, head.encode() + framing)
    assert status == 400 and headers["content-type"] == "application/problem+json", (status, body)
    assert balance(server, "acc-05") == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/accounts/acc-00%2f/deposit"),
        ("POST", "/accounts/acc-00%2F/deposit"),
        ("POST", "/accounts//acc-00/deposit"),
        ("POST", "/accounts/acc-00/deposit/"),
        ("POST", "/transfers/"),
        ("POST", "/checkout/"),
        ("PATCH", "/admin/config/"),
        ("GET", "/accounts/acc-00%2f"),
        ("GET", "/stats/"),
    ],
)
def test_no_path_is_ever_redirected(server, method, path):
    """Item 6: `%2f` in an id (or a doubled or trailing slash) answered 308 to a cleaned path, which a client
    that follows redirects re-POSTs to another account. Now it is a 4xx problem, and nothing changes."""
    before = balance(server, "acc-00")
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    status, headers, body = send(server, (head + 'Content-Length: 12\r\n\r\n{"amount":1}').encode())
    assert 400 <= status < 500 and "location" not in headers, (status, headers)
    assert headers["content-type"] == "application/problem+json", headers
    assert body["status"] == status
    assert balance(server, "acc-00") == before


def ipv6_loopback_or_skip() -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as error:
        pytest.skip(f"::1 cannot be bound on this machine ({error}): no IPv6 loopback to serve on")


@pytest.mark.parametrize("host", ["::1", "::"])
def test_serve_binds_an_ipv6_address_and_prints_its_url_bracketed(host):
    """Item 7: `bankapp serve --host ::1` (or `::`) crashed with `'' is not a valid port number`."""
    ipv6_loopback_or_skip()
    with live_server("--host", host, "--admin-token", "t0ken") as running:
        assert running.url.startswith(f"http://[{host}]:"), running.url
        port = int(running.url.rsplit(":", 1)[1])
        response = requests.get(f"http://[::1]:{port}/healthz", timeout=10)
        assert response.status_code == 200, response.text
        deposit = requests.post(f"http://[::1]:{port}/accounts/acc-00/deposit", json={"amount": 1}, timeout=10)
        assert deposit.status_code == 200 and deposit.json()["balance"] == 100_001
        # bound beyond loopback, it says which host names it answers (item 11)
        said = "".join(running.output)
        assert ("needs --allowed-hosts NAME" in said) == (host == "::"), said


@pytest.mark.parametrize("retry", ["7.0", "7e0", "7.00", "0.7e1"])
def test_a_retry_that_spells_the_same_amount_another_way_replays(server, retry):
    """Item 8: the fingerprint is taken over the request as validated: `7`, `7.0` and `7e0` are one amount."""
    key = f"hostile-spelling-{retry}"
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    first = server.post("/accounts/acc-06/deposit", data='{"amount": 7}', headers=headers)
    assert first.status_code == 200, first.text
    again = server.post("/accounts/acc-06/deposit", data=f'{{"amount": {retry}}}', headers=headers)
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true", again.text
    assert again.json() == first.json()
    other = server.post("/accounts/acc-06/deposit", data='{"amount": 8}', headers=headers)
    assert other.status_code == 422  # another amount is another request


@pytest.mark.parametrize("body", ['{"amount":-5,"amount":1}', '{"amount":1,"amount":1}', '{"amounts":[{"a":1,"a":2}]}'])
def test_duplicate_json_keys_are_a_400_problem_not_last_wins(server, body):
    """Item 8: a key twice in one object is ambiguous (parsers differ on which wins): refused, nothing applied."""
    before = balance(server, "acc-07")
    response = server.post("/accounts/acc-07/deposit", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("duplicate-json-key") and "more than once" in response.json()["detail"]
    assert balance(server, "acc-07") == before


def test_two_idempotency_key_headers_are_a_400(server):
    """Item 8: gunicorn joins repeated headers with a comma; two keys for one request are refused."""
    before = balance(server, "acc-08")
    head = HEAD.format(path="/accounts/acc-08/deposit") + "Idempotency-Key: one\r\nIdempotency-Key: two\r\n"
    status, _, body = send(server, (head + 'Content-Length: 12\r\n\r\n{"amount":1}').encode())
    assert status == 400 and body["type"].endswith("bad-idempotency-key") and "sent" in body["detail"], body
    assert balance(server, "acc-08") == before
