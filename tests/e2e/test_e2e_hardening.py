"""Hardening against a real `bankapp serve`: body limits, the admin token,
idempotent retries, and SIGTERM in the middle of a burst."""

import json
import re
import signal
import threading
import time
from dataclasses import dataclass

import pytest
import requests

from bankapp.server.shutdown import SUMMARY_PREFIX

from ..live import live_server, read_response

pytestmark = pytest.mark.e2e

#: gunicorn's graceful_timeout in `bankapp serve`.
GRACEFUL_TIMEOUT = 10
BIG = b"[" + b"1," * 600_000 + b"1]"  # 1.2 MB of valid JSON


@pytest.fixture(scope="module")
def server():
    with live_server("--guard", "lock", "--race-window-ms", "0", "--admin-token", "t0ken") as running:
        yield running


def chunks(data: bytes, size: int = 65536):
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_one_mib_is_a_413_problem(server, framing):
    body = BIG if framing == "content-length" else chunks(BIG)
    response = server.post("/accounts/acc-01/deposit", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert server.get("/accounts/acc-01").json()["balance"] == 100_000


def test_a_small_chunked_body_is_read_whole(server):
    body = chunks(b'{"amount": 7}', size=4)
    response = server.post("/accounts/acc-02/deposit", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["balance"] == 100_007


def test_one_connection_keeps_its_place_whether_or_not_the_app_read_the_body(server):
    """A deposit reads its body to the end (the worker keeps the connection without draining); a body the app
    never reads (`POST /healthz`, a 405) is drained before the next request, whose bytes it must not become."""
    deposit = b'{"amount": 3}'
    unread = b"GET /accounts/acc-09 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # a request's bytes, as a body: never served
    before = server.get("/accounts/acc-09").json()["balance"]
    with server.connect() as sock:
        for path, body, status in (
            ("/accounts/acc-09/deposit", deposit, 200),
            ("/healthz", unread, 405),
            ("/accounts/acc-09/deposit", deposit, 200),
            ("/healthz", b"", 405),
        ):
            head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            sock.sendall(head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer_status, headers, answer = read_response(sock)
            assert answer_status == status, answer
            assert headers.get("connection", "").lower() != "close"
        sock.sendall(b"GET /accounts/acc-09 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer_status, _, answer = read_response(sock)
    assert answer_status == 200 and json.loads(answer)["balance"] == before + 6


def test_unknown_path_and_method_are_problems(server):
    assert server.get("/nowhere").headers["Content-Type"] == "application/problem+json"
    response = requests.delete(server.url + "/accounts/acc-00", timeout=10)
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "GET" in response.headers["Allow"]


def test_the_admin_token_is_enforced(server):
    assert server.get("/admin/config").status_code == 401
    assert server.get("/admin/config", headers={"Authorization": "Bearer nope"}).status_code == 403
    ok = server.get("/admin/config", headers={"Authorization": "Bearer t0ken"})
    assert ok.status_code == 200
    assert ok.json()["admin_token"] == "set"
    assert "t0ken" not in "".join(server.output)


def test_concurrent_retries_with_one_key_apply_once(server):
    threads = 8
    start = threading.Barrier(threads, timeout=10)
    answers = []

    def retry():
        start.wait()
        response = server.post("/accounts/acc-03/deposit", json={"amount": 40}, headers={"Idempotency-Key": "e2e-once"})
        answers.append((response.status_code, response.text, response.headers.get("Idempotent-Replayed")))

    workers = [threading.Thread(target=retry) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert {(status, text) for status, text, _ in answers} == {(200, answers[0][1])}
    assert sum(1 for *_, replayed in answers if replayed == "true") == threads - 1
    assert server.get("/accounts/acc-03").json()["balance"] == 100_040


@dataclass
class Attempt:
    sent: float
    answered: float | None = None
    status: int | None = None
    error: str | None = None


def test_sigterm_during_a_burst_loses_no_acknowledged_deposit_and_breaks_no_request_in_flight():
    """16 clients deposit 1 cent at a time into one account under `lock` with
    a 20 ms race window, so about 16 requests are in flight at any moment
    (one in the window, the others waiting for the lock). SIGTERM lands in
    the middle. Then:

    - gunicorn exits 0 within its graceful timeout;
    - every request sent before SIGTERM got an HTTP answer, a 200 (requests
      sent after it may be refused: the server is stopping);
    - the worker's last line (printed on exit, after the last request) says
      it acknowledged exactly the deposits the clients saw acknowledged, that
      none of them was lost (all of them are in the balance), and that no
      guard is still held.
    """
    clients, amount = 16, 1
    attempts: list[list[Attempt]] = [[] for _ in range(clients)]
    with live_server("--guard", "lock", "--race-window-ms", "20") as server:
        start = threading.Barrier(clients + 1, timeout=10)

        def client(mine: list[Attempt]):
            with requests.Session() as session:
                start.wait()
                while True:
                    attempt = Attempt(sent=time.monotonic())
                    mine.append(attempt)
                    try:
                        response = session.post(
                            f"{server.url}/accounts/acc-00/deposit", json={"amount": amount}, timeout=15
                        )
                    except requests.RequestException as error:
                        attempt.error = type(error).__name__
                        return  # the server is gone
                    attempt.answered, attempt.status = time.monotonic(), response.status_code

        threads = [threading.Thread(target=client, args=(mine,)) for mine in attempts]
        for thread in threads:
            thread.start()
        start.wait()
        time.sleep(0.5)  # about 25 deposits done, 16 in flight
        sigterm_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(GRACEFUL_TIMEOUT + 5)
        exited_at = time.monotonic()
        for thread in threads:
            thread.join(20)
        final = wait_for_final_line(server.output)

    every = [attempt for mine in attempts for attempt in mine]
    before_sigterm = [a for a in every if a.sent < sigterm_at]
    in_flight = [a for a in before_sigterm if a.answered is None or a.answered > sigterm_at]
    acknowledged = [a for a in every if a.status == 200]

    assert exit_code == 0
    assert exited_at - sigterm_at < GRACEFUL_TIMEOUT
    assert len(in_flight) >= clients // 2, "SIGTERM should land while requests are in flight"
    assert [(a.status, a.error) for a in before_sigterm if a.status != 200] == []
    assert all(a.status in (200, None) for a in every)
    line = final.pop("line")
    assert final == {"acknowledged": len(acknowledged), "cents": len(acknowledged) * amount, "lost": 0}, line
    assert line.endswith("; no guard or lock held"), line


#: The worker's last line, as `bankapp.server.shutdown.summary` writes it after deposits.
SUMMARY = re.compile(SUMMARY_PREFIX + r"\d+ stopped: ([\d,]+) deposits? acknowledged \(([\d,]+) cents, ([\d,]+) lost\)")


def wait_for_final_line(output: list[str], timeout: float = 10) -> dict:
    """The worker's last words, once the output pump has read them: its counts, and the line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in output:
            if match := SUMMARY.match(line):
                acknowledged, cents, lost = (int(group.replace(",", "")) for group in match.groups())
                return {"acknowledged": acknowledged, "cents": cents, "lost": lost, "line": line.strip()}
        time.sleep(0.05)
    raise AssertionError("no final line from the worker:\n" + "".join(output))
