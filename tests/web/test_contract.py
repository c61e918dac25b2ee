"""The API contract: `/openapi.json` is valid OpenAPI 3, lists every route,
says what each answers, and `/docs` works with no internet."""

import re

import pytest
from openapi_spec_validator import validate

from bankapp.web.idempotency import idempotent

OWN_ROUTES_NOT_IN_THE_DOCUMENT = {"/openapi.json", "/docs"}


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json


def test_the_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.")
    validate(document)


def test_every_route_of_the_app_is_in_the_document(app, document):
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/docs/", "/static/")) or rule.rule in OWN_ROUTES_NOT_IN_THE_DOCUMENT:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {rule.rule} is not in /openapi.json"


def test_every_operation_declares_a_success_and_errors_as_problem_json(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert any(status.startswith("2") for status in responses), f"{method} {path}: no success declared"
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], f"{method} {path} {status}"


def test_no_leftover_validation_model_of_the_library(document):
    assert "ValidationErrorModel" not in str(document)


def test_bodies_can_be_refused_as_too_big_malformed_or_of_the_wrong_type(document):
    deposit = document["paths"]["/accounts/{account_id}/deposit"]["post"]["responses"]
    assert {"400", "413", "415", "422"} <= deposit.keys()
    assert "413" not in document["paths"]["/healthz"]["get"]["responses"]


def test_patch_config_documents_the_runtime_settings_but_validates_as_before(client, document):
    body = document["paths"]["/admin/config"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    settings = body["properties"]
    assert {"guard", "deposit_guard", "race_window_ms", "lock_timeout_ms"} <= settings.keys()
    assert not {"threads", "workers", "accounts", "admin_token"} & settings.keys()
    assert body["additionalProperties"] is False
    assert not body.get("required")
    assert settings["deposit_permits"]["minimum"] == 1
    # the model documents; ConfigHolder.patch still refuses, naming the setting
    response = client.patch("/admin/config", json={"threads": 8})
    assert "threads: can only be set at start" in response.json["detail"]


def test_admin_operations_say_a_token_may_be_needed(document):
    operation = document["paths"]["/admin/config"]["get"]
    assert operation["security"] == [{"adminToken": []}, {}]
    assert {"401", "403"} <= operation["responses"].keys()
    assert document["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_idempotent_operations_document_the_header(document):
    for action in ("deposit", "withdraw"):
        operation = document["paths"][f"/accounts/{{account_id}}/{action}"]["post"]
        header = next(p for p in operation["parameters"] if p["in"] == "header")
        assert header["name"] == "Idempotency-Key"
        assert header["schema"]["maxLength"] == 255
        assert "Idempotent-Replayed" in operation["responses"]["200"]["headers"]
    batch = document["paths"]["/accounts/{account_id}/batch-deposit"]["post"]
    assert all(p["in"] != "header" for p in batch["parameters"])


def test_a_view_adopts_idempotency_and_its_documentation_in_one_line(make_app):
    """What the checkout and transfer views will do: one decorator line."""
    from flask_openapi3 import APIBlueprint

    from bankapp.web.schemas import AmountIn, BalanceOut

    app = make_app()
    bp = APIBlueprint("extra", __name__)

    @bp.post("/extra", responses={200: BalanceOut})
    @idempotent
    def extra(body: AmountIn):
        return {"id": "x", "balance": body.amount}

    app.register_api(bp)
    operation = app.api_doc["paths"]["/extra"]["post"]
    assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
    client = app.test_client()
    first = client.post("/extra", json={"amount": 3}, headers={"Idempotency-Key": "k"})
    again = client.post("/extra", json={"amount": 3}, headers={"Idempotency-Key": "k"})
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def test_docs_opens_the_swagger_ui_served_from_the_package(client):
    response = client.get("/docs", follow_redirects=True)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "swagger-ui" in page
    assert not EXTERNAL.search(page), "the page loads something from the internet"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert len(assets) >= 3
    base = response.request.path.rsplit("/", 1)[0] + "/"
    for asset in assets:
        with client.get(base + asset) as served:  # static files: close them
            assert served.status_code == 200, asset
            assert served.content_length > 0
    # the UI reads the document next to it and asks no online validator
    assert client.get(base + "openapi.json").json["openapi"].startswith("3.")
    assert '"validatorUrl": null' in page


def test_docs_index_is_offline_too(client):
    page = client.get("/docs/").get_data(as_text=True)
    assert not EXTERNAL.search(page)
