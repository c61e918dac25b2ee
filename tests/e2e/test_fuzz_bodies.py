"""A property-based fuzz of the body reader, against a real gunicorn (hypothesis).

Each example is a deposit body of one kind (a good deposit however its number
is spelled, a value that is not an object, nesting up to past the bound,
bytes that are not JSON, a body over the limit, a malformed chunk), framed by
`Content-Length` or chunked at random sizes, sent on a raw socket. The
property: the answer is the status the kind calls for, a problem for every
refusal, the balance moves by exactly the deposits answered 200, a retry with
the same `Idempotency-Key` in the other framing is a replay, and `/healthz`
answers after every example. Bounded in examples, so it runs in CI.
"""

import contextlib
import itertools
import json
import threading

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bankapp.web.body import MAX_BODY_BYTES, MAX_DEPTH

from ..live import live_server, read_response

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

ACCOUNT = "acc-07"
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
NOT_OBJECTS = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def server():
    with live_server("--deposit-guard", "lock", "--race-window-ms", "0") as running:
        running.accepted = 0  # cents the fuzz saw answered 200
        running.keys = itertools.count()
        yield running


@st.composite
def cases(draw) -> tuple[str, bytes, int]:
    """(kind, body, status the body reader must answer)."""
    kind = draw(st.sampled_from(["deposit", "nested", "not-object", "not-json", "too-large", "bad-chunk"]))
    if kind in ("deposit", "bad-chunk"):
        amount = draw(st.integers(1, 10_000))
        spelled = draw(st.sampled_from(["{}", "{}.0", "{}e0", "{}.000", "{}00e-2"])).format(amount)
        body = b'{"amount": %s}' % spelled.encode() + b" " * draw(st.integers(0, 300))
        return kind, body, 200 if kind == "deposit" else 400
    if kind == "nested":
        depth = draw(st.integers(1, 2 * MAX_DEPTH))  # arrays inside the object: one more level
        return kind, b'{"amount": ' + b"[" * depth + b"]" * depth + b"}", 400 if depth + 1 > MAX_DEPTH else 422
    if kind == "not-object":
        return kind, json.dumps(draw(NOT_OBJECTS)).encode(), 422
    if kind == "too-large":
        return kind, b'{"amount": 1}' + b" " * (MAX_BODY_BYTES + draw(st.integers(-12, 70_000))), 413
    garbage = draw(st.binary(min_size=1, max_size=64).filter(lambda data: not parses(data)))
    return kind, garbage, 400


def parses(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def frame(body: bytes, chunk_sizes: list[int] | None, bad_size: bytes | None = None, key: str = "") -> bytes:
    head = (
        b"POST /accounts/%s/deposit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        % ACCOUNT.encode()
    )
    head += f"Idempotency-Key: {key}\r\n".encode() if key else b""
    if chunk_sizes is None:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    chunks, start = [], 0
    for size in itertools.cycle(chunk_sizes):
        if start >= len(body):
            break
        piece, start = body[start : start + size], start + size
        size_line = bad_size if bad_size is not None and not chunks else b"%x" % len(piece)
        chunks.append(b"%s\r\n%s\r\n" % (size_line, piece))
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(chunks) + b"0\r\n\r\n"


def exchange(server, data: bytes) -> tuple[int, dict, bytes]:
    """Send while reading: a server that refuses early may close before it has read everything."""
    with server.connect(timeout=15) as sock:
        sender = threading.Thread(target=lambda: _send(sock, data))
        sender.start()
        try:
            return read_response(sock)
        finally:
            sender.join(15)


def _send(sock, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the answer is already on its way
        sock.sendall(data)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    case=cases(),
    chunked=st.booleans(),
    chunk_sizes=st.lists(st.integers(1, 70_000), min_size=1, max_size=4),
    bad_size=st.sampled_from([b"zz", b"-1", b"", b"0x10", b"1 0"]),
)
def test_the_body_reader_answers_what_the_body_calls_for(server, case, chunked, chunk_sizes, bad_size):
    kind, body, expected = case
    chunked = chunked or kind == "bad-chunk"
    event(f"{kind}, {'chunked' if chunked else 'content-length'}")
    key = f"fuzz-{next(server.keys)}" if kind == "deposit" else ""
    framing = chunk_sizes if chunked else None
    status, headers, answer = exchange(server, frame(body, framing, bad_size if kind == "bad-chunk" else None, key))
    assert status == expected, (kind, answer[:300])
    if status != 200:
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(answer)["status"] == status
    else:
        server.accepted += int(json.loads(body)["amount"])
        # the same request in the other framing, with the same key: a replay, applied once
        status, headers, again = exchange(server, frame(body, None if chunked else [7], key=key))
        assert (status, headers.get("idempotent-replayed"), again) == (200, "true", answer)
    assert server.get(f"/accounts/{ACCOUNT}").json()["balance"] == 100_000 + server.accepted
    assert server.get("/healthz").status_code == 200
