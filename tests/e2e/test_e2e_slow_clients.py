"""Slow clients against a real `bankapp serve --threads 8` (see `bankapp.server.worker`).

Twice as many slow connections as threads (half trickle their headers, half
their body, one byte a second) and as many idle ones that never send a byte:
before the hardened worker, 8 of them took every thread and `/healthz` timed
out. Now `/healthz`, `/stats`, `/debug/locks` and `/admin/config` answer
within 1 s throughout, a normal deposit goes in, every slow client is cut off
with a 408 problem, and none of their deposits is applied.
"""

import contextlib
import json
import select
import threading
import time

import pytest
import requests

from bankapp.server.worker import REQUEST_READ_TIMEOUT

from ..live import live_server, read_response

pytestmark = pytest.mark.e2e

THREADS = 8
SLOW = 2 * THREADS
IDLE = 2 * THREADS
DEPOSIT = b"POST /accounts/acc-01/deposit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
BODY = b'{"amount": 5}'


def trickle(server, slow_part: str, answers: list, start: threading.Barrier) -> None:
    """Send a deposit's request line (and, for a slow body, its headers) at once, then one byte a second."""
    if slow_part == "headers":
        first, rest = DEPOSIT, b"X-Trickle: " + b"a" * 60
    else:
        first, rest = DEPOSIT + b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n", BODY
    started = time.monotonic()
    with server.connect(timeout=30) as sock:
        start.wait()
        sock.sendall(first)
        for byte in rest:
            if select.select([sock], [], [], 1.0)[0]:
                break  # the server answered (or closed): stop sending
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
        status, headers, body = read_response(sock)
    answers.append((slow_part, status, headers.get("content-type"), json.loads(body), time.monotonic() - started))


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_slow_clients_get_408_and_never_take_the_threads_healthz_needs():
    with (
        live_server("--threads", str(THREADS), "--deposit-guard", "lock", "--race-window-ms", "0") as server,
        contextlib.ExitStack() as idle,
    ):
        for _ in range(IDLE):
            idle.enter_context(server.connect())
        answers: list = []
        start = threading.Barrier(SLOW + 1, timeout=10)
        slow = [
            threading.Thread(target=trickle, args=(server, part, answers, start))
            for part in ["headers", "body"] * (SLOW // 2)
        ]
        for thread in slow:
            thread.start()
        start.wait()
        probes, deposited = [], None
        deadline = time.monotonic() + 3 * REQUEST_READ_TIMEOUT
        while any(thread.is_alive() for thread in slow) and time.monotonic() < deadline:
            for path in ("/healthz", "/stats", "/debug/locks", "/admin/config"):
                sent = time.monotonic()
                status = requests.get(server.url + path, timeout=1).status_code  # ReadTimeout fails the test
                probes.append((path, status, time.monotonic() - sent))
            if deposited is None and len(probes) > 20:
                deposited = requests.post(server.url + "/accounts/acc-02/deposit", json={"amount": 5}, timeout=1)
            time.sleep(0.1)
        for thread in slow:
            thread.join(10)

        assert len(answers) == SLOW, "every slow client got an answer"
        for slow_part, status, content_type, problem, took in answers:
            assert (status, content_type, problem["status"]) == (408, "application/problem+json", 408), slow_part
            assert took < REQUEST_READ_TIMEOUT + 2
        assert {path for path, _, _ in probes} == {"/healthz", "/stats", "/debug/locks", "/admin/config"}
        assert all(status == 200 for _, status, _ in probes)
        assert max(took for _, _, took in probes) < 1.0
        assert deposited is not None and deposited.status_code == 200
        balances = {row["id"]: row["balance"] for row in server.get("/accounts").json()["accounts"]}
        assert (balances["acc-01"], balances["acc-02"]) == (100_000, 100_005)
        assert server.get("/stats").json()["deposits"]["acknowledged"] == 1
        assert server.get("/healthz").status_code == 200
