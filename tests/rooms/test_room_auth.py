"""Who opens what in a room: a team's token its own admin routes only; the admin token everything; `/metrics`
the admin token or loopback, never a team; names checked; a frozen team changes nothing (Flask's test client)."""

from __future__ import annotations

import pytest

from bankapp import create_app
from bankapp.rooms import MAX_TEAMS

TOKEN = "room-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ELSEWHERE = {"REMOTE_ADDR": "10.0.0.7"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client():
    return create_app({"admin_token": TOKEN}).test_client()


@pytest.fixture
def tokens(client):
    made = client.post("/admin/rooms", json={"teams": ["red", "blue"]}, headers=ADMIN)
    assert made.status_code == 201
    return {team["name"]: team["token"] for team in made.json["teams"]}


def test_without_teams_the_server_is_as_before(client):
    assert client.post("/accounts/acc-00/deposit", json={"amount": 5}).json["balance"] == 100_005
    assert client.get("/metrics", environ_base=ELSEWHERE).status_code == 200
    assert client.get("/admin/rooms", headers=ADMIN).json["teams"][0]["name"] == "default"


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("red", "/teams/red/admin/config", 200),
        ("red", "/admin/config?team=red", 403),  # the plain admin routes are the default team's
        ("red", "/teams/blue/admin/config", 403),
        ("red", "/admin/rooms", 403),
        ("red", "/teams/red/admin/rooms", 403),
        ("admin", "/teams/red/admin/config", 200),
        ("admin", "/teams/blue/admin/config", 200),
        ("admin", "/admin/rooms", 200),
        ("none", "/teams/red/admin/config", 401),
        ("none", "/teams/red/stats", 200),
    ],
)
def test_the_auth_matrix(client, tokens, who, path, status):
    headers = {"red": bearer(tokens["red"]), "admin": ADMIN, "none": {}}[who]
    assert client.get(path, headers=headers).status_code == status


def test_x_team_opens_the_same_as_the_prefix(client, tokens):
    assert client.get("/admin/config", headers={"X-Team": "red", **bearer(tokens["red"])}).status_code == 200
    assert client.get("/admin/config", headers={"X-Team": "blue", **bearer(tokens["red"])}).status_code == 403
    assert client.get("/stats", headers={"X-Team": "nobody"}).json["type"] == "urn:bankapp:problem:unknown-team"


def test_metrics_is_the_fleets_with_a_team_label(client, tokens):
    client.post("/teams/red/accounts/acc-00/deposit", json={"amount": 3})
    assert client.get("/metrics", environ_base=ELSEWHERE, headers=bearer(tokens["red"])).status_code == 403
    assert client.get("/metrics", environ_base=ELSEWHERE).status_code == 401
    assert client.get("/teams/red/metrics", headers=bearer(tokens["red"])).status_code == 403
    text = client.get("/metrics", environ_base=ELSEWHERE, headers=ADMIN).text
    assert 'bankapp_deposits_acknowledged_total{team="red"} 1.0' in text
    assert 'bankapp_deposits_acknowledged_total{team="blue"} 0.0' in text
    assert client.get("/metrics").status_code == 200  # loopback


def test_a_team_token_changes_its_own_settings_and_no_one_elses(client, tokens):
    changed = client.patch("/teams/red/admin/config", json={"deposit_guard": "rlock"}, headers=bearer(tokens["red"]))
    assert changed.json["deposit_guard"] == "rlock"
    assert client.get("/teams/blue/stats").json["settings"]["deposit_guard"] != "rlock"
    assert client.get("/stats").json["settings"]["deposit_guard"] != "rlock"


@pytest.mark.parametrize(
    ("teams", "status", "slug"),
    [
        (["Red"], 422, "bad-team-name"),
        (["a" * 33], 422, "bad-team-name"),
        ([""], 422, "bad-team-name"),
        (["ok", "no_underscore"], 422, "bad-team-name"),
        ([7], 422, "bad-team-name"),
        (["x", "x"], 422, "duplicate-team"),
        (["red"], 409, "team-exists"),
        (["default"], 409, "team-exists"),
        ([], 422, "invalid-input"),
        ("red", 422, "invalid-input"),
    ],
)
def test_bad_names_are_refused_naming_them_and_nothing_is_made(client, tokens, teams, status, slug):
    answer = client.post("/admin/rooms", json={"teams": teams}, headers=ADMIN)
    assert (answer.status_code, answer.json["type"]) == (status, f"urn:bankapp:problem:{slug}")
    assert answer.mimetype == "application/problem+json"
    if isinstance(teams, list) and teams and isinstance(teams[-1], str) and teams[-1] not in ("x", "red", "default"):
        assert repr(teams[-1]) in answer.json["detail"]
    names = [team["name"] for team in client.get("/admin/rooms", headers=ADMIN).json["teams"]]
    assert names == ["default", "red", "blue"]


def test_teams_per_server_are_bounded(client):
    names = [f"t{n}" for n in range(MAX_TEAMS)]
    refused = client.post("/admin/rooms", json={"teams": names}, headers=ADMIN)
    assert refused.status_code == 409 and refused.json["type"] == "urn:bankapp:problem:too-many-teams"
    assert client.post("/admin/rooms", json={"teams": names[:-1]}, headers=ADMIN).status_code == 201
    assert len(client.get("/admin/rooms", headers=ADMIN).json["teams"]) == MAX_TEAMS


def test_freeze_refuses_every_state_change_until_thawed(client, tokens):
    assert client.post("/admin/rooms/freeze", json={"frozen": True}, headers=ADMIN).json["frozen"] is True
    refused = client.post("/teams/red/accounts/acc-00/deposit", json={"amount": 1})
    assert (refused.status_code, refused.json["type"]) == (423, "urn:bankapp:problem:team-frozen")
    assert client.post("/accounts/acc-00/deposit", json={"amount": 1}).status_code == 423
    assert client.post("/teams/red/admin/reset", headers=bearer(tokens["red"])).status_code == 423
    assert client.get("/teams/red/accounts/acc-00").json["balance"] == 100_000  # reads go on
    client.post("/admin/rooms/freeze", json={"frozen": False}, headers=ADMIN)
    assert client.post("/teams/red/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200


def test_the_room_moves_to_a_lesson_and_resets_together(client, tokens):
    client.post("/teams/red/accounts/acc-00/deposit", json={"amount": 9})
    moved = client.post("/admin/rooms/lesson", json={"lesson": 8}, headers=ADMIN).json
    assert moved["lesson"] == 8 and moved["teams"] == 3
    for path in ("/stats", "/teams/red/stats", "/teams/blue/stats"):
        stats = client.get(path).json
        assert stats["settings"]["transfer_policy"] == "naive" and stats["deposits"]["acknowledged"] == 0
    bad = client.post("/admin/rooms/lesson", json={"lesson": 99}, headers=ADMIN)
    assert (bad.status_code, bad.json["type"]) == (422, "urn:bankapp:problem:unknown-lesson")
    client.post("/teams/blue/accounts/acc-00/deposit", json={"amount": 9})
    assert client.post("/admin/rooms/reset", headers=ADMIN).json["teams"] == 3
    assert client.get("/teams/blue/accounts/acc-00").json["balance"] == 100_000
    assert client.post("/admin/rooms/reset", headers=bearer(tokens["red"])).status_code == 403


def test_idempotency_keys_are_each_teams_own(client, tokens):
    key = {"Idempotency-Key": "same-key"}

    def deposit(team: str) -> int:
        return client.post(f"/teams/{team}/accounts/acc-00/deposit", json={"amount": 4}, headers=key).json["balance"]

    assert [deposit("red"), deposit("blue"), deposit("blue")] == [100_004, 100_004, 100_004]


def test_past_its_share_a_team_is_answered_503_with_retry_after_and_others_are_not():
    app = create_app({"admin_token": TOKEN, "threads": 8})  # budget 6; with 3 teams a share of 2
    client = app.test_client()
    client.post("/admin/rooms", json={"teams": ["red", "blue"]}, headers=ADMIN)
    share = app.extensions["bankapp.room"].share
    assert [share.enter("red") for _ in range(5)] == [True, True, True, True, False]  # 2 + 2 borrowed
    refused = client.post("/teams/red/accounts/acc-00/deposit", json={"amount": 1})
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "1")
    assert refused.json["type"] == "urn:bankapp:problem:team-share" and refused.json["team"] == "red"
    assert refused.headers["X-Request-Id"] and refused.headers["X-Served-By"]
    stats = client.get("/teams/red/stats")  # reads of its state live on the reserve
    assert stats.json["deposits"]["acknowledged"] == 0  # the refusal changed nothing
    assert client.post("/teams/blue/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200
    for _ in range(4):
        share.leave("red")
    assert client.post("/teams/red/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200


def test_in_a_room_a_grade_needs_its_teams_token_and_the_console_shows_it(client, tokens):
    grade = {"team": "red", "exercise": "deposit-guard", "passed": True, "schedules": 12, "speed_ratio": 0.9}
    assert client.post("/scoreboard", json=grade, headers=bearer(tokens["blue"])).status_code in (401, 403)
    assert client.post("/scoreboard", json=grade).status_code == 401
    assert client.post("/scoreboard", json=grade, headers=bearer(tokens["red"])).status_code in (200, 201)
    client.post("/admin/rooms/freeze", json={"frozen": True}, headers=ADMIN)
    failed = grade | {"exercise": "fair-lock", "passed": False}
    assert client.post("/scoreboard", json=failed, headers=bearer(tokens["red"])).status_code in (200, 201)
    room = {team["name"]: team for team in client.get("/admin/rooms", headers=ADMIN).json["teams"]}
    assert room["red"]["grades"] == {"deposit-guard": True, "fair-lock": False}
    assert room["blue"]["grades"] == {}


@pytest.mark.parametrize(
    ("path", "data", "content_type", "status", "slug"),
    [
        ("/admin/rooms", "{bad", "application/json", 400, "malformed-json"),
        ("/admin/rooms", '{"teams": ["a"]}', "text/plain", 415, "unsupported-media-type"),
        ("/admin/rooms/lesson", '{"lesson": "3"}', "application/json", 422, "unknown-lesson"),
        ("/admin/rooms/lesson", '{"lesson": true}', "application/json", 422, "unknown-lesson"),
        ("/admin/rooms/freeze", '{"frozen": "yes"}', "application/json", 422, "invalid-input"),
    ],
)
def test_bad_bodies_to_the_room_are_refused_and_change_nothing(client, path, data, content_type, status, slug):
    answer = client.post(path, data=data, content_type=content_type, headers=ADMIN)
    assert (answer.status_code, answer.json["type"]) == (status, f"urn:bankapp:problem:{slug}")
    room = client.get("/admin/rooms", headers=ADMIN).json["teams"]
    assert [team["name"] for team in room] == ["default"] and room[0]["frozen"] is False
    assert client.get("/stats").json["settings"]["race_window_ms"] == 1
