"""The API contract: an OpenAPI document that tells the truth, and `/docs`.

flask-openapi3 writes the document from the pydantic models of each view.
Left alone it would lie in a few places, and a client generated from it (or
schemathesis, which checks every answer against it) would trip on them:

- it declares every error model as `application/json`, but every error here
  is `application/problem+json` (see `problems`);
- it adds its own 422 shape (a list of pydantic errors) to every operation,
  even those that take no input, while ours is one problem naming each field;
- it cannot know what the app does around the views: a body that is not JSON
  or nested too deep (400), late (408), too big (413) or not
  `application/json` (415), see `body`; the admin token (401, 403); the
  `Idempotency-Key` header of idempotent views; the `X-Request-Id` header
  of every answer (see `request_id`).

`BankAPI.generate_spec_json` fixes the document once, in one place, so a new
view gets all of this by declaring `responses={..., 409: Problem}` as usual.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, url_for
from flask_openapi3 import OpenAPI

from . import admin_auth, idempotency, request_id
from .body import MAX_BODY_BYTES, MAX_DEPTH

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
REQUEST_ID_REF = f"#/components/headers/{request_id.HEADER}"

#: Answers the app gives around the views, by status: (when, applies to).
BODY_PROBLEMS = {
    "400": f"the body is not valid JSON, is nested over {MAX_DEPTH} deep, or its chunked framing is malformed",
    "408": "the body did not arrive within the server's read deadline",
    "413": f"the body is larger than {MAX_BODY_BYTES // 1024 // 1024} MiB, whatever its framing",
    "415": "the body is not application/json",
}
ADMIN_PROBLEMS = {
    "401": "admin_token is set and the request has no `Authorization: Bearer` header",
    "403": "the bearer token is wrong, or (no admin_token set) the client is not on loopback",
}

#: Swagger UI asks validator.swagger.io for a badge by default: the page must
#: work with no internet, so it asks nobody.
SWAGGER_CONFIG = {"validatorUrl": None}


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}}


def add_problem(responses: dict[str, Any], status: str, description: str) -> None:
    """Declare a problem answer, or add a reason to the one already declared."""
    if status not in responses:
        responses[status] = problem_response(description)
    elif description not in responses[status].get("description", ""):
        responses[status]["description"] += f"; or {description}"


class BankAPI(OpenAPI):
    """flask-openapi3's app, whose document is made honest after it is generated."""

    def generate_spec_json(self):
        super().generate_spec_json()
        make_honest(self.spec_json, self)


def make_honest(spec: dict[str, Any], app: Flask) -> None:
    """Rewrite `spec` in place to say what the app really answers."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("ValidationErrorModel", None)
    idempotent = idempotency.documented_operations(app)
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:  # a path item's own "parameters", "summary"...
                continue
            responses = operation.setdefault("responses", {})
            if _is_library_422(responses.get("422")):
                del responses["422"]
            for response in responses.values():
                _problems_as_problem_json(response)
            takes_input = operation.get("parameters") or operation.get("requestBody")
            if takes_input:
                add_problem(responses, "422", "a field breaks its rule; `detail` names it")
            if method in {"post", "put", "patch"}:
                for status, description in BODY_PROBLEMS.items():
                    add_problem(responses, status, description)
            if (path, method) in idempotent:
                idempotency.document(operation)
                for status, description in idempotency.PROBLEMS.items():
                    add_problem(responses, status, description)
            if admin_auth.is_admin_path(_flask_path(path)):
                admin_auth.document(operation)
                for status, description in ADMIN_PROBLEMS.items():
                    add_problem(responses, status, description)
            for response in responses.values():
                response.setdefault("headers", {})[request_id.HEADER] = {"$ref": REQUEST_ID_REF}
    spec["components"].setdefault("headers", {})[request_id.HEADER] = request_id.DOCUMENTED
    if any(admin_auth.is_admin_path(_flask_path(path)) for path in spec.get("paths", {})):
        components = spec["components"]
        components["securitySchemes"] = {**(components.get("securitySchemes") or {}), **admin_auth.SECURITY_SCHEMES}


def _is_library_422(response: dict[str, Any] | None) -> bool:
    """flask-openapi3's own 422 (a list of its ValidationErrorModel), not one a view declared."""
    if not response:
        return False
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("type") == "array" and schema.get("items", {}).get("$ref", "").endswith("/ValidationErrorModel")


def _problems_as_problem_json(response: dict[str, Any]) -> None:
    content = response.get("content", {})
    media = content.get("application/json")
    if media and media.get("schema", {}).get("$ref") == PROBLEM_REF:
        content[PROBLEM_JSON] = content.pop("application/json")


def _flask_path(openapi_path: str) -> str:
    return openapi_path.replace("{", "<").replace("}", ">")


def init_docs(app: Flask) -> None:
    """`/docs` opens the Swagger UI, whose assets come from the installed
    flask-openapi3-swagger package, never from a CDN."""
    app.config["SWAGGER_CONFIG"] = SWAGGER_CONFIG
    app.add_url_rule("/docs", "docs", lambda: redirect(url_for("swagger.swagger")))
