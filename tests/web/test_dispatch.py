"""A body validated once from its bytes (`views.dispatch.validated_body`) is what the general way makes of it.

The general way parses with `bankapp.web.body` (its rules: `Decimal` for a
fraction, no `NaN`, a depth bound, the encodings JSON allows) and then
validates the dict. The quick way hands plain bytes to pydantic's parser.
For every body here, through real requests on the deposit, both must give
the same model, or the same refusal: the quick way's answer is compared with
a second app's, whose views always take the general way.
"""

import pytest

from bankapp.web.views import dispatch

JSON = "application/json"

BODIES = [
    b'{"amount": 7}',
    b' {\n "amount" : 7 } ',
    b'{"amount": 7, "amount": 9}',  # pydantic's parser lets the last win, `body` refuses it
    b'{"amount": 7, "note": "a:b"}',
    b'{"amount": 7, "x": {"amount": 7}}',
    b'{"amount": 0}',
    b'{"amount": -3}',
    b'{"amount": 100000001}',
    b'{"amount": "7"}',
    b'{"amount": true}',
    b'{"amount": null}',
    b'{"amount": 7.0}',
    b'{"amount": 1e2}',
    b'{"amount": 0.99999999999999999999}',
    b'{"amount": NaN}',
    b'{"amount": Infinity}',
    b'{"amount": 7, "note": "x"}',
    b'{"amount": 7, "note": "\\ud800"}',
    b'{"amount": [7]}',
    b'{"amount": {"cents": 7}}',
    b"[7]",
    b"7",
    b'"{\\"amount\\": 7}"',
    b'{"amount": 7',
    b'{"amount": 07}',
    b'{"amount": 7,}',
    b'{"amount": 7} 8',
    b'{"amount": 7, "note": "a\tb"}',
    b"\xef\xbb\xbf" + b'{"amount": 7}',
    '{"amount": 7}'.encode("utf-16"),
    b'{"amount": 7, "note": "\xff"}',
    b"[" * 40 + b"]" * 40,
    b'{"amount": ' + b"9" * 5000 + b"}",
    b"",
]


def answer(client, body: bytes, content_type: str = JSON) -> tuple:
    response = client.post("/accounts/acc-01/deposit", data=body, content_type=content_type)
    payload = response.json if response.is_json else response.get_data(as_text=True)
    if isinstance(payload, dict):
        payload.pop("instance", None)  # names the request, which differs
        payload.pop("request_id", None)
    return response.status_code, response.mimetype, payload


def general_answer(make_app, body: bytes, content_type: str = JSON) -> tuple:
    """What an app whose views never validate from bytes (every body parsed by `body` first) answers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatch, "NOT_PLAIN", _Everything())
        return answer(make_app().test_client(), body, content_type)


class _Everything:
    def search(self, data):
        return True


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_a_body_validated_from_its_bytes_answers_as_the_general_way(make_app, body):
    quick = answer(make_app().test_client(), body)
    assert quick == general_answer(make_app, body)


def test_the_quick_way_is_taken_for_a_plain_body_and_not_for_a_fraction(make_app, monkeypatch):
    """So the comparison above compares two ways, not one way twice."""
    client = make_app().test_client()
    seen = []
    real = dispatch.NOT_PLAIN

    class Watching:
        def search(self, data):
            found = real.search(data)
            seen.append((data, found is None))
            return found

    monkeypatch.setattr(dispatch, "NOT_PLAIN", Watching())
    assert client.post("/accounts/acc-01/deposit", data=b'{"amount": 7}', content_type=JSON).status_code == 200
    assert client.post("/accounts/acc-01/deposit", data=b'{"amount": 7.0}', content_type=JSON).status_code == 200
    assert seen == [(b'{"amount": 7}', True), (b'{"amount": 7.0}', False)]
    assert (
        client.get("/accounts/acc-01").json["balance"]
        == make_app().test_client().get("/accounts/acc-01").json["balance"] + 14
    )


def test_another_content_type_is_refused_as_before(make_app):
    for content_type in ("text/plain", "application/json; charset=utf-8"):
        quick = answer(make_app().test_client(), b'{"amount": 7}', content_type)
        assert quick == general_answer(make_app, b'{"amount": 7}', content_type)
