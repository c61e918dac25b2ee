"""The room's scoreboard over HTTP (the Flask client): grades kept per team and exercise, every bad grade refused by
name and changing nothing, code never accepted, posting rate-limited and the board bounded, the team-token hook that
rooms install, and real threads posting at once losing no grade."""

from __future__ import annotations

import itertools
import threading

import pytest

from bankapp.web.scoreboard import SELF_REPORTED, RoomTokens, Scoreboard, install_token_check
from bankapp.web.scoreboard.board import EXTENSION, MAX_EXERCISES, MAX_TEAMS
from bankapp.web.views.scoreboard import BUCKETS, CLIENT_BURST, TEAM_BURST, TEAM_PER_SECOND


def grade(team="red", exercise="deposit-guard", passed=True, schedules=42, speed_ratio=1.5, **extra):
    body = {"team": team, "exercise": exercise, "passed": passed, "schedules": schedules, "speed_ratio": speed_ratio}
    return body | extra


def board(client) -> dict:
    response = client.get("/scoreboard")
    assert response.status_code == 200
    return response.json


def ticking(app, seconds: float = 60.0) -> None:
    """Every bucket's clock moves `seconds` on each read: posting as slowly as the limits allow, without waiting."""
    for buckets in app.extensions[BUCKETS].values():
        buckets.clock = itertools.count(0.0, seconds).__next__


def frozen(app) -> list[float]:
    """The buckets' clock stopped at a time the test moves by hand."""
    now = [0.0]
    for buckets in app.extensions[BUCKETS].values():
        buckets.clock = lambda: now[0]
    return now


def test_a_grade_lands_in_its_teams_row_and_the_board_says_it_is_self_reported(client):
    response = client.post("/scoreboard", json=grade())
    assert response.status_code == 200
    row = response.json
    assert (row["team"], row["exercise"], row["attempts"]) == ("red", "deposit-guard", 1)
    assert row["best"] == row["latest"]
    assert row["latest"] | {"at": None} == {"passed": True, "schedules": 42, "speed_ratio": 1.5, "at": None}
    shown = board(client)
    assert shown["self_reported"] is True and shown["note"] == SELF_REPORTED
    assert "judged on the trainees' machines" in shown["note"]
    assert shown["token_required"] is False
    assert shown["teams"] == ["red"] and shown["exercises"] == ["deposit-guard"]
    assert shown["rows"] == [row]


def test_the_best_and_the_latest_are_kept_apart(client):
    client.post("/scoreboard", json=grade(passed=False, schedules=3, speed_ratio=None))
    client.post("/scoreboard", json=grade(passed=True, schedules=40, speed_ratio=0.5))
    client.post("/scoreboard", json=grade(passed=False, schedules=50, speed_ratio=None))
    (row,) = board(client)["rows"]
    assert row["attempts"] == 3
    assert (row["best"]["passed"], row["best"]["speed_ratio"]) == (True, 0.5)  # a later fail keeps the pass
    assert (row["latest"]["passed"], row["latest"]["schedules"]) == (False, 50)
    client.post("/scoreboard", json=grade(passed=True, schedules=40, speed_ratio=0.8))  # faster: the new best
    client.post("/scoreboard", json=grade(passed=True, schedules=40, speed_ratio=0.3))  # slower: the latest only
    (row,) = board(client)["rows"]
    assert (row["attempts"], row["best"]["speed_ratio"], row["latest"]["speed_ratio"]) == (5, 0.8, 0.3)


def test_columns_come_in_the_courses_order_then_other_levels(client):
    for team, exercise in [("blue", "the-naive-transfers"), ("red", "admission"), ("blue", "deposit-guard")]:
        assert client.post("/scoreboard", json=grade(team=team, exercise=exercise)).status_code == 200
    shown = board(client)
    assert shown["teams"] == ["blue", "red"]
    assert shown["exercises"] == ["deposit-guard", "admission", "the-naive-transfers"]
    assert [(r["team"], r["exercise"]) for r in shown["rows"]] == [
        ("blue", "deposit-guard"),
        ("blue", "the-naive-transfers"),
        ("red", "admission"),
    ]


BAD_GRADES = [
    ("team", grade(team="Red")),
    ("team", grade(team="")),
    ("team", grade(team="a" * 33)),
    ("team", grade(team="red team")),
    ("team", grade(team=7)),
    ("exercise", grade(exercise="deposit_guard")),
    ("exercise", grade(exercise="../etc")),
    ("passed", grade(passed=1)),
    ("passed", grade(passed="true")),
    ("passed", grade(passed=None)),
    ("schedules", grade(schedules=-1)),
    ("schedules", grade(schedules=1.5)),
    ("schedules", grade(schedules=True)),
    ("schedules", grade(schedules="42")),
    ("schedules", grade(schedules=10**13)),
    ("speed_ratio", grade(speed_ratio=0)),
    ("speed_ratio", grade(speed_ratio=-1.5)),
    ("speed_ratio", grade(speed_ratio="fast")),
    ("speed_ratio", grade(speed_ratio=True)),
    ("speed_ratio", grade(speed_ratio=1e7)),
    ("code", grade(code="class Guard: ...")),
    ("source", grade(source="import threading")),
    ("file", grade(file="guard.py")),
]


@pytest.mark.parametrize(("field", "body"), BAD_GRADES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_GRADES)])
def test_a_bad_grade_is_a_422_naming_its_field_and_changes_nothing(client, field, body):
    client.post("/scoreboard", json=grade(team="blue"))
    before = board(client)
    response = client.post("/scoreboard", json=body)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:bankapp:problem:invalid-input"
    assert [error["field"] for error in response.json["errors"]] == [field]
    assert field in response.json["detail"]
    assert board(client) == before


@pytest.mark.parametrize("missing", ["team", "exercise", "passed", "schedules"])
def test_a_grade_missing_a_field_names_it(client, missing):
    body = grade()
    del body[missing]
    response = client.post("/scoreboard", json=body)
    assert response.status_code == 422
    assert missing in response.json["detail"]
    assert board(client)["rows"] == []


def test_code_is_refused_even_beside_a_perfect_grade_and_never_stored(client):
    response = client.post("/scoreboard", json=grade(code="SECRET_SOURCE = 1"))
    assert response.status_code == 422
    assert response.json["errors"][0] == {"field": "code", "message": "unknown field", "type": "extra_forbidden"}
    assert "SECRET_SOURCE" not in client.get("/scoreboard").get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b'{"team": "red", "team": "blue"}', "application/json", 400),  # a repeated key
        (b"[1, 2]", "application/json", 422),
        (b"{not json", "application/json", 400),
        (
            b'{"team": "red", "exercise": "x", "passed": true, "schedules": 1, "speed_ratio": NaN}',
            "application/json",
            400,
        ),
        (b"team=red", "application/x-www-form-urlencoded", 415),
    ],
)
def test_a_body_that_is_not_a_grade_object_is_a_4xx_problem(client, data, content_type, status):
    response = client.post("/scoreboard", data=data, content_type=content_type)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert board(client)["rows"] == []


def test_a_speed_ratio_may_be_null_or_left_out_and_integral_numbers_written_as_fractions_count(client):
    body = grade(speed_ratio=None)
    del body["speed_ratio"]
    assert client.post("/scoreboard", json=body).json["latest"]["speed_ratio"] is None
    data = b'{"team": "red", "exercise": "admission", "passed": false, "schedules": 7.0, "speed_ratio": 1.25e0}'
    response = client.post("/scoreboard", data=data, content_type="application/json")
    assert response.status_code == 200, response.json
    assert (response.json["latest"]["schedules"], response.json["latest"]["speed_ratio"]) == (7, 1.25)


def test_a_team_posting_too_fast_gets_429_with_retry_after_and_its_grade_is_not_kept(app, client):
    now = frozen(app)
    for _ in range(TEAM_BURST):
        assert client.post("/scoreboard", json=grade()).status_code == 200
    response = client.post("/scoreboard", json=grade(passed=False))
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:bankapp:problem:rate-limited"
    assert response.json["limit"] == "team" and "red" in response.json["detail"]
    assert response.headers["Retry-After"] == str(round(1 / TEAM_PER_SECOND))
    (row,) = board(client)["rows"]
    assert (row["attempts"], row["latest"]["passed"]) == (TEAM_BURST, True)
    # another team is not held back by red's bucket
    assert client.post("/scoreboard", json=grade(team="blue")).status_code == 200
    now[0] += 1 / TEAM_PER_SECOND  # a token back
    assert client.post("/scoreboard", json=grade(passed=False)).status_code == 200
    assert client.post("/scoreboard", json=grade()).status_code == 429


def test_one_client_posting_for_many_teams_is_limited_by_its_address(app, client):
    frozen(app)
    for number in range(CLIENT_BURST):
        assert client.post("/scoreboard", json=grade(team=f"team-{number}")).status_code == 200
    response = client.post("/scoreboard", json=grade(team="one-more"))
    assert response.status_code == 429 and response.json["limit"] == "client"
    assert "Retry-After" in response.headers
    other = client.post("/scoreboard", json=grade(team="one-more"), environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code == 200
    assert len(board(client)["teams"]) == CLIENT_BURST + 1


def test_the_board_holds_at_most_max_teams_and_refuses_the_next_by_name(app, client):
    ticking(app)
    for number in range(MAX_TEAMS):
        assert client.post("/scoreboard", json=grade(team=f"t{number}")).status_code == 200
    before = board(client)
    response = client.post("/scoreboard", json=grade(team="latecomer"))
    assert response.status_code == 409
    assert response.json["type"] == "urn:bankapp:problem:scoreboard-full"
    assert (response.json["full"], response.json["limit"]) == ("teams", MAX_TEAMS)
    assert "latecomer" in response.json["detail"] and "DELETE /admin/scoreboard" in response.json["detail"]
    assert board(client) == before
    assert client.post("/scoreboard", json=grade(team="t0", passed=False)).status_code == 200  # a known row lands


def test_a_team_holds_at_most_max_exercises_rows(app, client):
    ticking(app)
    for number in range(MAX_EXERCISES):
        assert client.post("/scoreboard", json=grade(exercise=f"level-{number}")).status_code == 200
    response = client.post("/scoreboard", json=grade(exercise="one-too-many"))
    assert response.status_code == 409 and response.json["full"] == "exercises"
    assert len(board(client)["rows"]) == MAX_EXERCISES
    assert client.post("/scoreboard", json=grade(team="blue", exercise="one-too-many")).status_code == 200


def test_the_rate_limiter_keeps_a_bounded_number_of_buckets(app, client):
    buckets = app.extensions[BUCKETS]["client"]
    now = frozen(app)
    buckets.max_keys = 3
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        assert client.post("/scoreboard", json=grade(), environ_base={"REMOTE_ADDR": address}).status_code == 200
    response = client.post("/scoreboard", json=grade(team="blue"), environ_base={"REMOTE_ADDR": "192.0.2.4"})
    assert response.status_code == 429 and "too many clients" in response.json["detail"]
    now[0] += 3600  # every bucket full again: forgotten to make room
    response = client.post("/scoreboard", json=grade(team="blue"), environ_base={"REMOTE_ADDR": "192.0.2.4"})
    assert response.status_code == 200
    assert len(buckets) == 1


def test_with_rooms_a_grade_needs_its_teams_token(app, client):
    tokens = {"red": "red-token", "blue": "blue-token"}
    install_token_check(app.extensions, lambda team, token: token is not None and tokens.get(team) == token)
    assert board(client)["token_required"] is True
    missing = client.post("/scoreboard", json=grade())
    assert missing.status_code == 401
    assert missing.json["type"] == "urn:bankapp:problem:team-token-required"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.post("/scoreboard", json=grade(), headers={"Authorization": "Bearer blue-token"})
    assert wrong.status_code == 403 and wrong.json["team"] == "red"
    unknown = client.post("/scoreboard", json=grade(team="green"), headers={"Authorization": "Bearer red-token"})
    assert unknown.status_code == 403
    assert board(client)["rows"] == []
    right = client.post("/scoreboard", json=grade(), headers={"Authorization": "Bearer red-token"})
    assert right.status_code == 200
    install_token_check(app.extensions, None)  # open again
    assert client.post("/scoreboard", json=grade(team="green")).status_code == 200
    assert board(client)["teams"] == ["green", "red"]


def test_an_admin_empties_the_board(client):
    client.post("/scoreboard", json=grade())
    client.post("/scoreboard", json=grade(team="blue"))
    refused = client.delete("/admin/scoreboard", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert refused.status_code == 403
    assert len(board(client)["rows"]) == 2
    assert client.delete("/admin/scoreboard").json == {"cleared": 2}
    assert board(client)["rows"] == []


def test_each_app_starts_with_an_empty_board_of_its_own(make_app):
    first, second = make_app(), make_app()
    first.test_client().post("/scoreboard", json=grade())
    assert board(second.test_client())["rows"] == []
    assert isinstance(first.extensions[EXTENSION], Scoreboard)


def test_threads_posting_at_once_lose_no_grade(app):
    """Real threads, released together by a barrier, post into one row and into rows of their own."""
    ticking(app, 3600)
    threads_count, posts = 8, 25
    start = threading.Barrier(threads_count)
    answers: list[int] = []

    def post(number: int) -> None:
        client = app.test_client()
        start.wait()
        for _ in range(posts):
            answers.append(client.post("/scoreboard", json=grade(team="shared")).status_code)
            answers.append(client.post("/scoreboard", json=grade(team=f"own-{number}")).status_code)

    threads = [threading.Thread(target=post, args=(number,)) for number in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [200] * (2 * threads_count * posts)
    rows = {row["team"]: row["attempts"] for row in board(app.test_client())["rows"]}
    assert rows == {"shared": threads_count * posts} | {f"own-{n}": posts for n in range(threads_count)}


def test_a_poll_of_an_unchanged_board_is_a_304_and_any_change_is_a_new_etag(app, client):
    first = client.get("/scoreboard")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache"
    again = client.get("/scoreboard", headers={"If-None-Match": etag})
    assert (again.status_code, again.data, again.headers["ETag"]) == (304, b"", etag)
    client.post("/scoreboard", json=grade())
    changed = client.get("/scoreboard", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json["rows"] and changed.headers["ETag"] != etag
    etag = changed.headers["ETag"]
    client.post("/scoreboard", json=grade(code="x"))  # refused: the board and its ETag stay
    assert client.get("/scoreboard", headers={"If-None-Match": etag}).status_code == 304
    install_token_check(app.extensions, lambda team, token: True)
    assert client.get("/scoreboard", headers={"If-None-Match": etag}).json["token_required"] is True
    client.delete("/admin/scoreboard")
    assert client.get("/scoreboard", headers={"If-None-Match": etag}).json["rows"] == []


class FakeTeam:
    def __init__(self, token: str | None):
        self.token = token

    def opens(self, token: str) -> bool:
        return self.token is not None and token == self.token


class FakeRoom:
    """A room as `bankapp.rooms.Room` shows itself to the board: `alone` until teams are made, `get(name)`."""

    def __init__(self):
        self.teams = {"default": FakeTeam(None)}

    @property
    def alone(self) -> bool:
        return len(self.teams) == 1

    def get(self, name: str) -> FakeTeam | None:
        return self.teams.get(name)


def test_a_room_asks_for_no_token_until_it_has_teams_then_for_each_teams_own(app, client):
    room = FakeRoom()
    install_token_check(app.extensions, RoomTokens(room))
    assert board(client)["token_required"] is False
    assert client.post("/scoreboard", json=grade(team="early")).status_code == 200  # no teams yet: open
    etag = client.get("/scoreboard").headers["ETag"]
    room.teams |= {"red": FakeTeam("red-token"), "blue": FakeTeam("blue-token")}
    shown = client.get("/scoreboard", headers={"If-None-Match": etag})
    assert shown.status_code == 200 and shown.json["token_required"] is True  # the ETag saw the room change
    assert client.post("/scoreboard", json=grade()).status_code == 401
    assert client.post("/scoreboard", json=grade(), headers={"Authorization": "Bearer blue-token"}).status_code == 403
    for team in ("early", "default"):  # not a team of the room, or the default team: nobody posts for it
        refused = client.post("/scoreboard", json=grade(team=team), headers={"Authorization": "Bearer red-token"})
        assert refused.status_code == 403
    assert client.post("/scoreboard", json=grade(), headers={"Authorization": "Bearer red-token"}).status_code == 200
    assert [row["team"] for row in board(client)["rows"]] == ["early", "red"]
