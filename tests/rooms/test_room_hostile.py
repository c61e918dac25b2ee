"""A room of curious trainees against a real server (memory store, real HTTP): what one team's token, path or
header tricks could reach of another team or of the room, each found once and kept shut here."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
import requests

from ..live import live_server, read_response

pytestmark = [pytest.mark.timeout(60)]

TOKEN = "room-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def room():
    with live_server("--admin-token", TOKEN, "--race-window-ms", "1") as server:
        made = server.post("/admin/rooms", json={"teams": ["red", "blue"]}, headers=ADMIN)
        assert made.status_code == 201, made.text
        yield server, {team["name"]: team["token"] for team in made.json()["teams"]}


def test_a_team_token_cannot_empty_the_room_scoreboard(room):
    server, tokens = room
    grade = {"team": "blue", "exercise": "deposit-guard", "passed": True, "schedules": 5}
    assert server.post("/scoreboard", json=grade, headers=bearer(tokens["blue"])).status_code == 200
    for path in ("/teams/red/admin/scoreboard", "/admin/scoreboard"):
        answer = requests_delete(server, path, bearer(tokens["red"]))
        assert answer.status_code == 403, answer.text
        assert answer.headers["Content-Type"] == "application/problem+json"
    rows = server.get("/scoreboard").json()["rows"]
    assert [(row["team"], row["exercise"]) for row in rows] == [("blue", "deposit-guard")]  # blue's grade stays
    assert requests_delete(server, "/admin/scoreboard", ADMIN).json() == {"cleared": 1}  # the instructor's


def requests_delete(server, path: str, headers: dict[str, str]) -> requests.Response:
    return requests.delete(server.url + path, headers=headers, timeout=10)


def test_an_idempotency_key_never_reaches_another_team(room):
    server, _ = room
    key = "hostile-key-1"
    red = server.post("/teams/red/accounts/acc-03/deposit", json={"amount": 7}, headers={"Idempotency-Key": key})
    assert red.status_code == 200
    before = server.post("/accounts/acc-03/deposit", json={"amount": 1}).json()["balance"]  # unlike red's
    # the default team's key spelled as red's scoped key: its own deposit, not red's answer replayed
    forged = server.post("/accounts/acc-03/deposit", json={"amount": 7}, headers={"Idempotency-Key": f"team:red:{key}"})
    assert forged.status_code == 200 and forged.json()["balance"] == before + 7, forged.text
    blue = server.post("/teams/blue/accounts/acc-03/deposit", json={"amount": 7}, headers={"Idempotency-Key": key})
    assert blue.json()["balance"] == server.get("/teams/blue/accounts/acc-03").json()["balance"]
    again = server.post("/teams/red/accounts/acc-03/deposit", json={"amount": 7}, headers={"Idempotency-Key": key})
    assert again.json() == red.json()  # red's own retry still answers red's first result


def test_an_exploration_is_its_team_own(room):
    server, tokens = room
    body = {"scenario": "deposit", "max_schedules": 5}
    ran = server.post("/teams/red/admin/explore", json=body, headers=bearer(tokens["red"]))
    assert ran.status_code == 200, ran.text
    assert server.get("/teams/red/debug/explore").json()["exploration"] == ran.json()
    assert server.get("/teams/blue/debug/explore").json()["exploration"] is None
    assert server.get("/debug/explore").json()["exploration"] is None


def raw(server, request: str) -> tuple[int, dict[str, str], bytes]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode())
        return read_response(sock)


@pytest.mark.parametrize(
    ("path", "headers", "named"),
    [
        ("/teams/red/admin/config", "X-Team: blue\r\n", "X-Team names 'blue'"),
        ("/admin/config", "X-Team: red\r\nX-Team: blue\r\n", "two X-Team headers"),
        ("/teams/red/admin/config", "X-Team: red\r\nX-Team: red\r\n", "two X-Team headers"),
    ],
)
def test_a_team_named_two_ways_is_a_400_naming_it(room, path, headers, named):
    server, tokens = room
    request = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Authorization: Bearer {tokens['red']}\r\n"
        'Content-Type: application/json\r\nContent-Length: 22\r\nConnection: close\r\n\r\n{"race_window_ms": 3 }'
    )
    status, head, body = raw(server, request)
    assert status == 400 and head["content-type"] == "application/problem+json", body
    assert b"urn:bankapp:problem:bad-team" in body and named.encode() in body
    for team in ("red", "blue"):  # nothing changed
        config = server.get(f"/teams/{team}/admin/config", headers=bearer(tokens[team])).json()
        assert config["race_window_ms"] == 1


def test_path_tricks_never_reach_another_team(room):
    server, tokens = room
    red = bearer(tokens["red"])
    tricks = ("/teams/red/../blue/admin/config", "/teams/red%2f..%2fblue/admin/config", "/teams/red/teams/blue/stats")
    for path in tricks:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header(red)}Connection: close\r\n\r\n"
        status, _, body = raw(server, request)
        assert status == 404, (path, body)
    assert server.get("/teams/RED/stats").status_code == 404
    assert server.get("/stats", headers={"X-Team": ""}).status_code == 404
    assert server.get("/teams/blue/admin/config", headers=red).status_code == 403
    assert server.get("/teams/red/admin/rooms", headers=red).status_code == 403
    assert server.get("/teams/red/metrics", headers=red).status_code == 403


def header(headers: dict[str, str]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items())


@pytest.fixture(scope="module")
def pg_room(databases):
    flags = ("--store", "postgres", "--workers", "2", "--database-url", databases.create(), "--admin-token", TOKEN)
    with live_server(*flags, startup_timeout=40) as server:
        assert server.post("/admin/rooms", json={"teams": ["red"]}, headers=ADMIN).status_code == 201
        yield server


@pytest.mark.postgres
def test_on_postgres_a_freeze_answered_holds_on_every_worker(pg_room):
    """Each worker re-reads the shared freeze at most once a second: the freeze answers only once every worker
    will have seen it, so no deposit right after it lands on a worker still thawed."""
    server = pg_room
    for _ in range(8):  # the console's poll: each worker reads the freeze (thawed) just now
        assert requests.get(server.url + "/admin/rooms", headers=ADMIN | {"Connection": "close"}).ok
    assert server.post("/admin/rooms/freeze", json={"frozen": True}, headers=ADMIN).json()["frozen"] is True
    answers = [
        requests.post(
            server.url + "/teams/red/accounts/acc-00/deposit",
            json={"amount": 1},
            headers={"Connection": "close"},
            timeout=10,
        ).status_code
        for _ in range(8)
    ]
    assert answers == [423] * 8
    assert server.get("/teams/red/stats").json()["deposits"]["acknowledged"] == 0
    assert server.post("/admin/rooms/freeze", json={"frozen": False}, headers=ADMIN).ok


@pytest.mark.postgres
def test_on_postgres_workers_making_teams_at_once_never_pass_the_limit(pg_room):
    """Each worker checked the limit against the teams it knew: two workers making 40 teams each at once made 80,
    and each worker then knew only 64 of them (a team whose token was shown was a 404 on one worker)."""
    server = pg_room
    answers: dict[str, requests.Response] = {}

    def make(prefix: str) -> None:
        names = [f"{prefix}{i}" for i in range(16)]
        answers[prefix] = requests.post(
            server.url + "/admin/rooms", json={"teams": names}, headers=ADMIN | {"Connection": "close"}, timeout=60
        )

    makers = [threading.Thread(target=make, args=(prefix,)) for prefix in "abcdefgh"]
    for maker in makers:
        maker.start()
    for maker in makers:
        maker.join(90)
    assert all(answer.status_code in (201, 409) for answer in answers.values()), answers
    shown = [
        team["name"] for answer in answers.values() if answer.status_code == 201 for team in answer.json()["teams"]
    ]
    room = [team["name"] for team in server.get("/admin/rooms", headers=ADMIN).json()["teams"]]
    assert len(room) <= 64 and set(shown) <= set(room), (len(room), shown)
    for name in shown[-3:]:  # a team whose token was shown is found on every worker
        assert {
            requests.get(f"{server.url}/teams/{name}/stats", headers={"Connection": "close"}).status_code
            for _ in range(6)
        } == {200}, name


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_a_stop_names_the_guard_a_team_request_holds_forever():
    """A team's batch deposit under `lock` with no timeout waits for itself forever; the stop that cuts it
    says which guard it held, as it does for the default team's (it said 'no guard or lock held')."""
    with live_server("--admin-token", TOKEN) as server:
        made = server.post("/admin/rooms", json={"teams": ["red"]}, headers=ADMIN).json()["teams"][0]
        settings = {"deposit_guard": "lock", "lock_timeout_ms": None}
        assert server.patch("/teams/red/admin/config", json=settings, headers=bearer(made["token"])).ok
        stuck = threading.Thread(
            target=lambda: suppress(server.post, "/teams/red/accounts/acc-00/batch-deposit", json={"amounts": [1, 2]}),
            daemon=True,
        )
        stuck.start()
        time.sleep(0.5)  # the batch holds red's guard of acc-00 and waits for it again
        server.stop()
    lines = [line.rstrip("\n") for line in server.output if line.startswith("bankapp: ")]
    assert "holding the lock guard of acc-00" in lines[-2], lines[-3:]
    assert lines[-1].endswith("still held: lock guard of acc-00"), lines[-3:]


def suppress(call, *args, **kwargs) -> None:
    with contextlib.suppress(requests.RequestException):  # the server stopped under it
        call(*args, **kwargs)


def test_the_register_and_the_room_agree_on_the_limit():
    from bankapp.postgres.schema import MAX_TEAMS as REGISTER_LIMIT
    from bankapp.rooms import MAX_TEAMS

    assert REGISTER_LIMIT == MAX_TEAMS
