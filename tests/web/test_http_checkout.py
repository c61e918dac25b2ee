"""The catalogue and checkout through Flask's client, and every bad input."""

import pytest

STOCK = {"widget": 1_000_000, "flash-sale": 100}

COUNTERS = (
    "guard",
    "capacity",
    "available_permits",
    "in_flight",
    "peak_in_flight",
    "waiting",
    "peak_waiting",
    "admitted",
    "rejected",
    "completed",
    "out_of_stock",
    "oversold",
    "wait_ms",
    "latency_ms",
    "stock",
)


@pytest.fixture
def client(make_app):
    return make_app(race_window_ms=0, service_time_ms=0).test_client()


def state(client):
    """What must not change when a request is refused."""
    checkout = client.get("/stats").json["checkout"]
    return client.get("/catalog").json, {name: checkout[name] for name in COUNTERS}


def test_catalog_lists_both_skus_with_their_stock(client):
    items = client.get("/catalog").json["items"]
    assert {item["sku"]: item["stock"] for item in items} == STOCK
    assert {item["sku"]: item["initial_stock"] for item in items} == STOCK


def test_checkout_answers_the_order_and_takes_the_stock(client):
    response = client.post("/checkout", json={"sku": "flash-sale", "quantity": 3})
    assert response.status_code == 200
    order = response.json
    assert order["order_id"].startswith("ord-")
    assert (order["sku"], order["quantity"], order["remaining"], order["guard"]) == ("flash-sale", 3, 97, "unsafe")
    assert {"wait_ms", "gateway_ms", "latency_ms"} <= order.keys()
    assert {i["sku"]: i["stock"] for i in client.get("/catalog").json["items"]}["flash-sale"] == 97


def test_stats_checkout_has_every_counter_of_the_spec(client):
    client.post("/checkout", json={"sku": "widget", "quantity": 2})
    stats = client.get("/stats").json
    assert "deposits" in stats
    checkout = stats["checkout"]
    assert set(COUNTERS) <= checkout.keys()
    assert (checkout["admitted"], checkout["completed"], checkout["rejected"]) == (1, 1, 0)
    assert checkout["sold"] == {"widget": 2, "flash-sale": 0}
    assert set(checkout["wait_ms"]) == set(checkout["latency_ms"]) == {"p50", "p95", "p99", "max"}


def test_capacity_and_permits_follow_the_guard(client):
    assert client.get("/stats").json["checkout"]["capacity"] is None
    client.patch("/admin/config", json={"checkout_guard": "semaphore", "capacity": 6})
    checkout = client.get("/stats").json["checkout"]
    assert checkout["capacity"] == checkout["available_permits"] == 6
    client.patch("/admin/config", json={"checkout_guard": "lock"})
    checkout = client.get("/stats").json["checkout"]
    assert (checkout["capacity"], checkout["available_permits"]) == (1, None)


def test_out_of_stock_is_a_409_problem_and_changes_nothing_but_its_counter(client):
    catalog = client.get("/catalog").json
    response = client.post("/checkout", json={"sku": "flash-sale", "quantity": 101})
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.json["type"].endswith("out-of-stock")
    assert (response.json["sku"], response.json["available"], response.json["quantity"]) == ("flash-sale", 100, 101)
    assert client.get("/catalog").json == catalog
    assert client.get("/stats").json["checkout"]["out_of_stock"] == 1


def test_unknown_sku_is_a_404_problem_naming_it_and_changes_nothing(client):
    before = state(client)
    response = client.post("/checkout", json={"sku": "gadget", "quantity": 1})
    assert response.status_code == 404
    assert response.json["type"].endswith("unknown-sku")
    assert response.json["sku"] == "gadget"
    assert "gadget" in response.json["detail"]
    assert state(client) == before


def test_not_admitted_is_a_503_with_retry_after_and_the_counts(make_app):
    app = make_app(checkout_guard="semaphore", capacity=2, race_window_ms=0, service_time_ms=0)
    client = app.test_client()
    shop = app.extensions["bankapp"].shop
    semaphore = shop.admission_guard(shop._config())
    assert semaphore.acquire(0) and semaphore.acquire(0)  # every permit taken, as by two long checkouts
    try:
        catalog = client.get("/catalog").json
        response = client.post("/checkout", json={"sku": "widget", "quantity": 1})
    finally:
        semaphore.release()
        semaphore.release()
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    body = response.json
    assert body["type"].endswith("admission-rejected")
    assert (body["reason"], body["guard"], body["capacity"], body["waiting"]) == ("full", "semaphore", 2, 0)
    assert "in_flight" in body and "max_waiting" in body
    assert client.get("/catalog").json == catalog
    checkout = client.get("/stats").json["checkout"]
    assert (checkout["rejected"], checkout["admitted"], checkout["available_permits"]) == (1, 0, 2)
    assert client.post("/checkout", json={"sku": "widget", "quantity": 1}).status_code == 200


def test_reset_restores_stock_and_zeroes_checkout_counters(client):
    client.post("/checkout", json={"sku": "flash-sale", "quantity": 40})
    client.post("/checkout", json={"sku": "flash-sale", "quantity": 99})
    assert client.post("/admin/reset").status_code == 200
    assert {i["sku"]: i["stock"] for i in client.get("/catalog").json["items"]} == STOCK
    checkout = client.get("/stats").json["checkout"]
    assert checkout["admitted"] == checkout["completed"] == checkout["out_of_stock"] == checkout["peak_in_flight"] == 0


def test_checkout_settings_are_patched_live_and_a_bad_combination_is_refused(client):
    response = client.patch("/admin/config", json={"checkout_guard": "semaphore", "capacity": 4, "max_waiting": 20})
    assert response.status_code == 200
    assert (response.json["capacity"], response.json["max_waiting"]) == (4, 20)
    response = client.patch("/admin/config", json={"checkout_guard": "lock", "max_waiting": 30})
    assert response.status_code == 422
    assert "max_waiting" in response.json["detail"] and "/healthz" in response.json["detail"]
    assert client.get("/admin/config").json["checkout_guard"] == "semaphore"


BAD_CHECKOUTS = [
    pytest.param({"sku": "widget"}, "quantity: Field required", id="missing-quantity"),
    pytest.param({"quantity": 1}, "sku: Field required", id="missing-sku"),
    pytest.param({"sku": "widget", "quantity": 0}, "quantity: Input should be greater than 0", id="zero"),
    pytest.param({"sku": "widget", "quantity": -3}, "quantity: Input should be greater than 0", id="negative"),
    pytest.param({"sku": "widget", "quantity": 1.5}, "quantity: Input should be a valid integer", id="fractional"),
    pytest.param({"sku": "widget", "quantity": True}, "quantity: Input should be a valid integer", id="boolean"),
    pytest.param({"sku": "widget", "quantity": "2"}, "quantity: Input should be a valid integer", id="string"),
    pytest.param({"sku": "widget", "quantity": None}, "quantity: Input should be a valid integer", id="null"),
    pytest.param({"sku": "widget", "quantity": 10**9}, "quantity: Input should be less than or equal to", id="huge"),
    pytest.param({"sku": 7, "quantity": 1}, "sku: Input should be a valid string", id="sku-not-a-string"),
    pytest.param({"sku": "", "quantity": 1}, "sku: String should have at least 1 character", id="empty-sku"),
    pytest.param({"sku": "widget", "quantity": 1, "coupon": "x"}, "coupon: unknown field", id="unknown-field"),
    pytest.param(["widget", 1], "body: expected a JSON object", id="not-an-object"),
]


@pytest.mark.parametrize(("body", "detail"), BAD_CHECKOUTS)
def test_bad_checkout_is_a_422_problem_naming_the_field_and_changes_nothing(client, body, detail):
    before = state(client)
    response = client.post("/checkout", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert detail in response.json["detail"]
    assert state(client) == before


def test_malformed_json_is_a_400_problem_and_changes_nothing(client):
    before = state(client)
    response = client.post("/checkout", data='{"sku": "widget", ', content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert state(client) == before


def test_empty_body_and_wrong_content_type_are_problems(client):
    before = state(client)
    assert client.post("/checkout").status_code == 422
    assert (
        client.post("/checkout", data='{"sku": "widget", "quantity": 1}', content_type="text/plain").status_code == 415
    )
    assert state(client) == before


def test_the_openapi_document_describes_checkout(client):
    paths = client.get("/openapi.json").json["paths"]
    assert "/catalog" in paths and "/checkout" in paths
    assert {"200", "409", "503"} <= paths["/checkout"]["post"]["responses"].keys()
