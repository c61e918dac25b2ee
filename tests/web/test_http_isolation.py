"""`POST /admin/isolation`: the matrix over HTTP on the postgres store, a named refusal on the memory store."""

import pytest

from bankapp import create_app
from bankapp.isolation import HERMITAGE
from bankapp.postgres import prepare
from bankapp.settings import load


def test_the_memory_store_is_refused_naming_store(client):
    response = client.post("/admin/isolation")
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["setting"] == "store" and problem["detail"].startswith("store:")


def test_admin_auth_applies(make_app):
    app = make_app(admin_token="s3cret")
    response = app.test_client().post("/admin/isolation")
    assert response.status_code == 401


@pytest.mark.postgres
def test_the_matrix_over_http_on_the_postgres_store(database_url):
    config = load({"store": "postgres", "database_url": database_url, "threads": 8}, environ={})
    app = create_app(prepare(config, set()))
    try:
        response = app.test_client().post("/admin/isolation")
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()
        assert answer["agrees"] is True and len(answer["cases"]) == 30
        for cell in answer["cases"]:
            assert cell["result"] == cell["hermitage"] == HERMITAGE[cell["case"]][cell["level"]].result
        lost = next(c for c in answer["cases"] if c["case"] == "P4" and c["level"] == "repeatable read")
        assert lost["how"] == "40001" and any("<waiting on T1>" in step for step in lost["steps"])
    finally:
        app.extensions["bankapp"].close()
