"""`X-Request-Id` on every answer, and `/debug/races` over HTTP (Flask's client, real threads)."""

from __future__ import annotations

import re
import threading
from functools import partial

import pytest

from ..harness import MeetingStore, held_by_another_thread, make_lab, run_together

WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")


@pytest.mark.parametrize("sent", ["abc", "3f2a9c1b-0e4d.77_aa", "x" * 64, "0"])
def test_a_well_formed_request_id_comes_back(client, sent):
    response = client.post("/accounts/acc-00/deposit", json={"amount": 1}, headers={"X-Request-Id": sent})
    assert response.status_code == 200 and response.headers["X-Request-Id"] == sent


@pytest.mark.parametrize("sent", [None, "", "x" * 65, "has space", "semi;colon", "slash/", "é"])
def test_any_other_request_gets_a_new_one(client, sent):
    headers = {} if sent is None else {"X-Request-Id": sent}
    first = client.get("/healthz", headers=headers).headers["X-Request-Id"]
    second = client.get("/healthz", headers=headers).headers["X-Request-Id"]
    assert WELL_FORMED.fullmatch(first) and first != sent and first != second


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/accounts/acc-99", None, 404),
        ("POST", "/accounts/acc-00/deposit", {"amount": -1}, 422),
        ("GET", "/no/such/path", None, 404),
        ("DELETE", "/healthz", None, 405),
        ("GET", "/debug/races?limit=0", None, 422),
    ],
)
def test_refusals_carry_the_request_id_too(client, method, path, body, status):
    response = client.open(path, method=method, json=body, headers={"X-Request-Id": "mine-1"})
    assert response.status_code == status and response.headers["X-Request-Id"] == "mine-1"


def test_the_document_declares_the_header_on_every_answer_and_the_races_route(client):
    document = client.get("/openapi.json").json
    header = document["components"]["headers"]["X-Request-Id"]
    assert header["required"] and header["schema"]["pattern"] == "^[A-Za-z0-9._-]{1,64}$"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                assert response["headers"]["X-Request-Id"] == {"$ref": "#/components/headers/X-Request-Id"}, (
                    f"{method} {path} {status}"
                )
    races = document["paths"]["/debug/races"]["get"]
    assert [p["name"] for p in races["parameters"]] == ["limit"]


ReadersMeet = partial(MeetingStore, on="read", timeout=0.5)


def racing_app(make_app, **settings):
    """An app whose lab's store makes two deposits meet between their reads and writes: a forced race."""
    app = make_app()
    app.extensions["bankapp"] = make_lab(ReadersMeet, **settings)
    return app


def test_a_forced_race_over_http_names_both_requests_by_their_ids(make_app):
    app = racing_app(make_app, deposit_guard="unsafe")

    def deposit(request_id, amount):
        with app.test_client() as client:
            response = client.post(
                "/accounts/acc-03/deposit", json={"amount": amount}, headers={"X-Request-Id": request_id}
            )
            assert response.status_code == 200 and response.headers["X-Request-Id"] == request_id

    run_together([partial(deposit, "req-alpha", 100), partial(deposit, "req-beta", 7)], names=["web-1", "web-2"])
    client = app.test_client()
    races = client.get("/debug/races").json
    (event,) = races["races"]
    eraser, (erased,) = event["eraser"], event["erased"]
    assert {eraser["request_id"], erased["request_id"]} == {"req-alpha", "req-beta"}
    assert eraser["operation"] == erased["operation"] == "deposit" and event["account"] == "acc-03"
    assert {eraser["thread"], erased["thread"]} == {"web-1", "web-2"}
    assert races["lost_updates"] == erased["delta"] == client.get("/stats").json["deposits"]["lost_updates"]
    assert event["sentence"].startswith(f"deposit {eraser['request_id']} on ")  # ids up to 12 characters are whole
    assert f"written by deposit {erased['request_id']} on " in event["sentence"]


def test_a_guard_that_excludes_leaves_the_list_empty(make_app):
    app = racing_app(make_app, deposit_guard="lock")
    run_together([lambda: app.test_client().post("/accounts/acc-03/deposit", json={"amount": 5})] * 2)
    races = app.test_client().get("/debug/races").json
    assert races["erasures"] == 0 and races["races"] == [] and races["lost_updates"] == 0


def test_the_races_answer_while_every_lock_of_the_account_is_held(make_app):
    app = make_app(deposit_guard="lock", race_window_ms=0)
    lab = app.extensions["bankapp"]
    with held_by_another_thread(lab.guards.get("lock", "acc-00")), held_by_another_thread(lab.locks["acc-00"]):
        answered = threading.Event()

        def ask():
            assert app.test_client().get("/debug/races").status_code == 200
            answered.set()

        threading.Thread(target=ask).start()
        assert answered.wait(5), "/debug/races waited on a lock"
