"""Bad input against a real `bankapp serve`: chunked bodies, the edges of
JSON, and requests gunicorn itself refuses. Raw sockets say exactly what
goes on the wire. Each case checks the answer is a problem, that nothing was
applied (or applied once), and that the server still answers."""

import json
import re
import time

import pytest
import requests

from bankapp.web.body import MAX_BODY_BYTES

from ..live import live_server

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def server():
    with live_server("--deposit-guard", "lock", "--race-window-ms", "0") as running:
        yield running


def balance(server, account: str) -> int:
    return server.get(f"/accounts/{account}").json()["balance"]


def request(path: str, body: bytes, *, chunks: list[bytes] | None = None, headers: str = "") -> bytes:
    """A POST of `body` framed by Content-Length, or chunked into `chunks` (raw chunk lines allowed)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}"
    if chunks is None:
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + b"".join(chunks)


def chunked(body: bytes, size: int = 65536) -> list[bytes]:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]


def padded(amount: int, length: int) -> bytes:
    """A valid deposit body, padded with spaces to exactly `length` bytes."""
    body = b'{"amount": %d}' % amount
    return body + b" " * (length - len(body))


def assert_problem(answer, status: int, *words: str) -> dict:
    code, headers, body = answer
    assert code == status, body
    assert headers["content-type"] == PROBLEM_JSON
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", headers["x-request-id"])  # gunicorn's own answers too
    problem = json.loads(body)
    assert problem["status"] == status
    for word in words:
        assert word in problem["detail"]
    return problem


# 4. chunked bodies and one body reader


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_the_body_limit_is_the_same_whatever_the_framing(server, framing):
    """The issue: a chunked body over 1 MiB whose first MiB is valid JSON was applied."""
    path, before = "/accounts/acc-01/deposit", balance(server, "acc-01")
    for length, status in ((MAX_BODY_BYTES + 1, 413), (MAX_BODY_BYTES + 70_000, 413), (MAX_BODY_BYTES, 200)):
        body = padded(3, length)
        code, _, answer = server.raw(request(path, body, chunks=chunked(body) if framing == "chunked" else None))
        assert code == status, (length, answer[:200])
    assert balance(server, "acc-01") == before + 3
    assert server.get("/healthz").status_code == 200


def test_chunked_deposits_with_one_key_and_different_amounts_are_not_a_false_replay(server):
    key, path = "Idempotency-Key: e2e-chunked-amounts\r\n", "/accounts/acc-02/deposit"
    before = balance(server, "acc-02")
    first = server.raw(request(path, b"", chunks=chunked(b'{"amount": 500}', 4), headers=key))
    assert first[0] == 200
    other = server.raw(request(path, b"", chunks=chunked(b'{"amount": 5}', 4), headers=key))
    assert_problem(other, 422, "another request")
    assert balance(server, "acc-02") == before + 500


def test_the_same_deposit_chunked_then_with_content_length_is_a_replay(server):
    key, path = "Idempotency-Key: e2e-two-framings\r\n", "/accounts/acc-03/deposit"
    before = balance(server, "acc-03")
    first = server.raw(request(path, b"", chunks=chunked(b'{"amount": 40}', 3), headers=key))
    again = server.raw(request(path, b'{"amount":40}', headers=key))
    assert (first[0], again[0]) == (200, 200)
    assert again[1]["idempotent-replayed"] == "true"
    assert json.loads(again[2]) == json.loads(first[2])
    assert balance(server, "acc-03") == before + 40


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"zz\r\n", b'{"amount": 9}\r\n', b"0\r\n\r\n"], id="not-hex"),
        pytest.param([b"-d\r\n", b'{"amount": 9}\r\n', b"0\r\n\r\n"], id="negative"),
        pytest.param([b"d\r\n", b'{"amount": 9}XX', b"0\r\n\r\n"], id="no-crlf-after-data"),
        pytest.param([b"d;\x01\r\n", b'{"amount": 9}\r\n', b"0\r\n\r\n"], id="bad-extension"),
        pytest.param([b"\r\n", b'{"amount": 9}\r\n', b"0\r\n\r\n"], id="empty-size"),
        pytest.param([b"0x0d\r\n", b'{"amount": 9}\r\n', b"0\r\n\r\n"], id="hex-prefix"),
    ],
)
def test_a_malformed_chunk_is_a_400_problem_and_changes_nothing(server, chunks):
    before = balance(server, "acc-04")
    assert_problem(server.raw(request("/accounts/acc-04/deposit", b"", chunks=chunks)), 400)
    assert balance(server, "acc-04") == before
    assert server.get("/healthz").status_code == 200


# 5. the edges of JSON


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        pytest.param(b'"{\\"amount\\": 7}"', 422, ["expected a JSON object, got a string"], id="string-of-an-object"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, 400, ["deep"], id="100000-nested-arrays"),
        pytest.param(b'{"amount": 0.99999999999999999999}', 422, ["amount:", "not a whole number"], id="almost-1"),
        pytest.param(b'{"amount": NaN}', 400, ["not valid JSON"], id="nan"),
    ],
)
def test_json_edges_are_4xx_problems_and_change_nothing(server, body, status, words):
    before = balance(server, "acc-05")
    for framing in (None, chunked(body)):
        assert_problem(server.raw(request("/accounts/acc-05/deposit", body, chunks=framing)), status, *words)
    assert balance(server, "acc-05") == before


def test_settings_follow_the_document_and_the_integral_number_rule(server):
    before = server.get("/admin/config").json()
    refused = server.patch("/admin/config", json={"guard": None})
    assert (refused.status_code, refused.headers["Content-Type"]) == (422, PROBLEM_JSON)
    assert server.get("/admin/config").json() == before
    as_written = {"Content-Type": "application/json"}
    accepted = server.patch("/admin/config", data='{"deposit_permits": 2.0}', headers=as_written)
    assert accepted.status_code == 200
    assert accepted.json()["deposit_permits"] == 2
    assert server.patch("/admin/config", json={"deposit_permits": before["deposit_permits"]}).status_code == 200


# 6. errors gunicorn answers before the app sees the request


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", 400, id="bad-request-line"),
        pytest.param(b"GET /healthz HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", 400, id="bad-version"),
        pytest.param(
            b"POST /accounts/acc-06/deposit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 13\r\n"
            b'Transfer-Encoding: chunked\r\n\r\nd\r\n{"amount": 9}\r\n0\r\n\r\n',
            400,
            id="content-length-and-chunked",
        ),
        pytest.param(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, id="request-line-too-long"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
            431,
            id="too-many-headers",
        ),
        pytest.param(b"GET /healthz HTTP/1.1\r\nBad Header: 1\r\n\r\n", 400, id="bad-header-name"),
    ],
)
def test_gunicorn_refusals_are_problems_too(server, raw, status):
    before = balance(server, "acc-06")
    problem = assert_problem(server.raw(raw), status)
    assert problem["type"].startswith("urn:bankapp:problem:")
    assert balance(server, "acc-06") == before
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_gone_mid_body_changes_nothing_and_logs_no_traceback(server, framing):
    before, body = balance(server, "acc-08"), b'{"amount": 5}' + b" " * 87
    with server.connect() as sock:
        sock.sendall(
            request("/accounts/acc-08/deposit", body, chunks=chunked(body) if framing == "chunked" else None)[:-90]
        )
        time.sleep(0.5)  # the server reads the head and waits for the rest
    time.sleep(0.5)  # and finds the end of the connection instead
    assert server.get("/healthz").status_code == 200
    assert balance(server, "acc-08") == before
    assert "Traceback" not in "".join(server.output)
