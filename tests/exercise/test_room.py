"""`post_grade` against a real `bankapp serve` on loopback: the row it answers, every refusal raised as a
`RoomError` that says why (a bad field, too many grades, a server that is not there), and code never sent."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bankapp.exercise.room import RoomError, post_grade

from ..live import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

GRADE = {"exercise": "deposit-guard", "passed": True, "schedules": 42, "speed_ratio": 1.3}


@pytest.fixture(scope="module")
def server():
    with live_server() as running:
        yield running


def test_a_grade_is_posted_and_shows_on_the_board(server):
    row = post_grade(server.url, "posted", GRADE)
    assert (row["team"], row["exercise"], row["attempts"]) == ("posted", "deposit-guard", 1)
    assert row["latest"]["speed_ratio"] == 1.3
    rows = [row for row in server.get("/scoreboard").json()["rows"] if row["team"] == "posted"]
    assert rows == [row]
    again = post_grade(server.url + "/", "posted", GRADE | {"passed": False, "speed_ratio": None})
    assert again["attempts"] == 2 and again["best"]["passed"] is True


def test_a_refused_grade_says_which_field_and_the_status(server):
    with pytest.raises(RoomError, match=r"\(422\).*schedules") as refused:
        post_grade(server.url, "refused", GRADE | {"schedules": -1})
    assert refused.value.status == 422
    assert refused.value.problem["errors"][0]["field"] == "schedules"
    with pytest.raises(RoomError, match="team"):
        post_grade(server.url, "Not A Team", GRADE)
    assert not [row for row in server.get("/scoreboard").json()["rows"] if row["team"] == "refused"]


def test_code_is_never_sent(server):
    with pytest.raises(RoomError, match=r"not sent.*'code'"):
        post_grade(server.url, "sneaky", GRADE | {"code": "class Guard: ..."})
    assert "sneaky" not in server.get("/scoreboard").json()["teams"]


def test_too_many_grades_say_when_to_try_again(server):
    statuses = []
    for _ in range(40):
        try:
            post_grade(server.url, "eager", GRADE)
        except RoomError as error:
            statuses.append(error.status)
            assert "Retry-After" in str(error) and "eager" in str(error)
            break
    assert statuses == [429]


def test_a_server_that_is_not_there_is_a_plain_error_not_a_hang():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused at once
        with pytest.raises(RoomError, match="cannot reach the room"):
            post_grade(f"http://127.0.0.1:{port}", "red", GRADE, timeout=5)
    with pytest.raises(RoomError, match="http://"):
        post_grade("127.0.0.1:8000", "red", GRADE)


def test_the_token_travels_as_a_bearer_header_and_the_body_is_the_grade_alone():
    """What goes on the wire, seen by a plain recording server: the team's token as `Authorization: Bearer`, and a
    body of the team and the four grade fields, nothing else."""
    seen: list[tuple[str | None, dict]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.headers.get("Authorization"), body))
            answer = json.dumps({"team": body["team"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    recorder = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{recorder.server_address[1]}"
        assert post_grade(url, "red", GRADE, token="red-t0ken") == {"team": "red"}
        post_grade(url, "blue", GRADE)
    finally:
        recorder.shutdown()
        recorder.server_close()
        thread.join(timeout=10)
    assert seen == [("Bearer red-t0ken", {"team": "red", **GRADE}), (None, {"team": "blue", **GRADE})]


def answering(status: int, content_type: str, body: bytes):
    """A plain server that answers every POST with `status` and `body`."""

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Answer)


@pytest.mark.parametrize(
    ("status", "content_type", "body", "said"),
    [
        (503, "application/problem+json", b'{"title": "Server busy", "detail": "try later"}', r"\(503\): try later"),
        (500, "text/html", b"<h1>oops</h1>", r"\(500\): Internal Server Error"),
        (200, "text/html", b"<h1>not a bankapp</h1>", "did not answer JSON"),
    ],
)
def test_a_server_error_or_a_server_that_is_not_bankapp_is_said_plainly(status, content_type, body, said):
    server = answering(status, content_type, body)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(RoomError, match=said) as refused:
            post_grade(f"http://127.0.0.1:{server.server_address[1]}", "red", GRADE, timeout=10)
        assert refused.value.status == (status if status >= 400 else None)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_server_that_never_answers_is_an_error_after_the_timeout_not_a_hang():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)  # the connection is queued, never accepted, never answered
        started = time.monotonic()
        with pytest.raises(RoomError, match=r"cannot reach the room.*timed out"):
            post_grade(f"http://127.0.0.1:{listening.getsockname()[1]}", "red", GRADE, timeout=0.5)
        assert time.monotonic() - started < 10
