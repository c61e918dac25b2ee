"""The edges of JSON, through the Flask client: one body reader and one
number rule for every route (see `bankapp.web.body` and
`bankapp.settings.whole_number`). Each refusal is a 4xx problem that names
what is wrong and changes nothing."""

from typing import get_args

import pytest

from bankapp.settings import GuardName
from bankapp.web.body import MAX_DEPTH

JSON = "application/json"


def state(client) -> tuple:
    return (
        client.get("/accounts").json,
        client.get("/catalog").json,
        client.get("/admin/config").json,
        client.get("/stats").json["deposits"]["acknowledged"],
    )


def post(client, path: str, raw: str):
    return client.post(path, data=raw, content_type=JSON)


def assert_refused(client, response, status: int, *words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    for word in words:
        assert word in response.json["detail"]


NOT_OBJECTS = [
    pytest.param('"{\\"amount\\": 7}"', "got a string", id="a-string-holding-an-object"),
    pytest.param("7", "got a number", id="a-number"),
    pytest.param("7.5", "got a number", id="a-fraction"),
    pytest.param('[{"amount": 7}]', "got an array", id="an-array"),
    pytest.param("true", "got a boolean", id="a-boolean"),
]


@pytest.mark.parametrize("path", ["/accounts/acc-00/deposit", "/checkout", "/transfers", "/admin/config"])
@pytest.mark.parametrize(("raw", "kind"), NOT_OBJECTS)
def test_a_top_level_value_that_is_not_an_object_is_a_422_on_every_route(client, path, raw, kind):
    before = state(client)
    method = client.patch if path == "/admin/config" else client.post
    response = method(path, data=raw, content_type=JSON)
    assert_refused(client, response, 422, "body: expected a JSON object", kind)
    assert state(client) == before


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="100000-arrays"),
        pytest.param('{"a":' * 100_000 + "1" + "}" * 100_000, id="100000-objects"),
        pytest.param('{"amount": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}", id="one-over-the-bound"),
    ],
)
def test_nesting_beyond_the_bound_is_a_400_never_a_500(client, raw):
    before = state(client)
    assert_refused(client, post(client, "/accounts/acc-00/deposit", raw), 400, f"over {MAX_DEPTH} deep")
    assert state(client) == before


def test_nesting_up_to_the_bound_is_parsed_and_left_to_the_models(client):
    raw = '{"amount": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    assert_refused(client, post(client, "/accounts/acc-00/deposit", raw), 422, "amount:")


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/accounts/acc-00/deposit", '{"amount": 0.99999999999999999999}', "amount"),
        ("/accounts/acc-00/deposit", '{"amount": 100.00000000000000001}', "amount"),
        ("/accounts/acc-00/deposit", '{"amount": 1E-999999999}', "amount"),
        ("/accounts/acc-00/withdraw", '{"amount": 1.5}', "amount"),
        ("/accounts/acc-00/batch-deposit", '{"amounts": [1, 0.99999999999999999999]}', "amounts.1"),
        ("/transfers", '{"from": "acc-00", "to": "acc-01", "amount": 2.000000000000000000001}', "amount"),
        ("/checkout", '{"sku": "widget", "quantity": 1.0000000000000000001}', "quantity"),
    ],
)
def test_a_number_that_is_not_exactly_whole_is_a_422_naming_the_field(client, path, raw, field):
    before = state(client)
    assert_refused(client, post(client, path, raw), 422, f"{field}: Input should be a valid integer")
    assert state(client) == before


@pytest.mark.parametrize("raw", ['{"amount": 1e999999999}', '{"amount": -1e999999999}', '{"amount": 1e30}'])
def test_a_huge_number_is_refused_at_once(client, raw):
    assert_refused(client, post(client, "/accounts/acc-00/deposit", raw), 422, "amount:")


@pytest.mark.parametrize("raw", ['{"amount": NaN}', '{"amount": Infinity}', '{"amount": -Infinity}'])
def test_nan_and_infinity_are_not_json(client, raw):
    assert_refused(client, post(client, "/accounts/acc-00/deposit", raw), 400, "not valid JSON")


def test_an_integer_of_thousands_of_digits_is_a_400_not_a_500(client):
    assert post(client, "/accounts/acc-00/deposit", '{"amount": ' + "9" * 5000 + "}").status_code == 400


@pytest.mark.parametrize("amount", ["100", "100.0", "1e2", "1E+2", "100.000"])
def test_an_integral_number_is_that_integer_however_written(client, amount):
    response = post(client, "/accounts/acc-02/deposit", f'{{"amount": {amount}}}')
    assert response.status_code == 200, response.json
    assert response.json["balance"] == 100_100


def test_the_same_rule_holds_for_quantities_and_settings(client):
    assert post(client, "/checkout", '{"sku": "widget", "quantity": 2.0}').json["quantity"] == 2
    response = client.patch("/admin/config", data='{"deposit_permits": 2.0, "capacity": 4e0}', content_type=JSON)
    assert response.status_code == 200, response.json
    assert (response.json["deposit_permits"], response.json["capacity"]) == (2, 4)
    assert isinstance(response.json["deposit_permits"], int)
    assert client.patch("/admin/config", json={"race_window_ms": 0.5}).json["race_window_ms"] == 0.5


BAD_SETTINGS = [
    pytest.param({"guard": None}, "guard: Input should be", id="guard-null"),
    pytest.param({"deposit_guard": None}, "deposit_guard: Input should be", id="deposit-guard-null"),
    pytest.param({"checkout_guard": None}, "checkout_guard: Input should be", id="checkout-guard-null"),
    pytest.param({"transfer_policy": None}, "transfer_policy: Input should be", id="policy-null"),
    pytest.param({"capacity": None}, "capacity: Input should be a valid integer", id="capacity-null"),
    pytest.param({"race_window_ms": None}, "race_window_ms: Input should be a valid number", id="window-null"),
    pytest.param({"lock_timeout_ms": "forever"}, "lock_timeout_ms", id="timeout-forever"),
    pytest.param({"lock_timeout_ms": "NONE"}, "lock_timeout_ms", id="timeout-upper-case"),
    pytest.param({"deposit_permits": 2.5}, "deposit_permits: Input should be a valid integer", id="permits-fraction"),
    pytest.param({"guard": "LOCK"}, "guard: Input should be", id="guard-upper-case"),
]


@pytest.mark.parametrize(("body", "detail"), BAD_SETTINGS)
def test_settings_are_validated_as_the_document_says(client, body, detail):
    before = state(client)
    assert_refused(client, client.patch("/admin/config", json=body), 422, detail)
    assert state(client) == before


def test_the_document_allows_what_the_service_accepts(client):
    document = client.get("/openapi.json").json
    body = document["paths"]["/admin/config"]["patch"]["requestBody"]["content"][JSON]["schema"]
    settings = body["properties"]
    assert settings["guard"]["enum"] == list(get_args(GuardName))  # the guards both deposits and checkouts have
    assert "null" not in str(settings["guard"]) and "null" not in str(settings["capacity"])
    assert {"type": "null"} in settings["lock_timeout_ms"]["anyOf"]
    assert client.patch("/admin/config", json={"lock_timeout_ms": None}).json["lock_timeout_ms"] == "none"


@pytest.mark.parametrize(
    ("path", "raw"),
    [("/accounts/acc-00/deposit", '{"amount": '), ("/admin/config", "{guard"), ("/checkout", "\xff")],
)
def test_malformed_json_says_where(client, path, raw):
    method = client.patch if path == "/admin/config" else client.post
    response = method(path, data=raw, content_type=JSON)
    assert_refused(client, response, 400, "not valid JSON")
