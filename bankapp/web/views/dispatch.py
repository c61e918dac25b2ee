"""The step between Flask's routing and a view: its path, query and body validated against its models.

flask-openapi3 writes the OpenAPI document from each view's models and, per
request, validates the request against them in a wrapper of its own. That
wrapper is general: every request it asks whether the view delays its
validation, calls one function per kind of input (header, cookie, path,
query, form, body, raw), reads `request` and `current_app` through Flask's
proxies, and asks the app whether to validate the answer. Measured with
callgrind, that, the `Idempotency-Key` wrapper's proxy reads and the views'
`lab()` came to about a tenth of the instructions of a whole deposit (see
docs/performance.md).

`Blueprint` is flask-openapi3's `APIBlueprint` whose views get a leaner
wrapper: which models a view has is decided once, when it is registered,
and each request runs only those, with the same pydantic models (so the same
rules, the same errors, the same 422 problem through the app's
`validation_error_callback`) and reads the request and the app from Flask's
context variables directly. The document is flask-openapi3's, unchanged: it
comes from the same models, registered the same way. A view this wrapper does
not cover (a coroutine, a class-based view, a header, cookie, form or raw
model, delayed validation) gets flask-openapi3's own.
"""

from __future__ import annotations

import inspect
import re
from functools import wraps

from flask import abort
from flask.globals import _cv_app, _cv_request
from flask_openapi3 import APIBlueprint
from flask_openapi3.request import _validate_query
from pydantic import ValidationError


def current_request():
    """The request being served: Flask's `request` without the proxy."""
    return _cv_request.get().request


def current_app_object():
    """The app serving this request: Flask's `current_app` without the proxy."""
    return _cv_app.get().app


#: What the bytes of a body must not hold for pydantic's own JSON parser to read them as `body` does: a fraction
#: or an exponent (`body` keeps them exact, as `Decimal`), `NaN`/`Infinity`, a string escape (a lone surrogate).
NOT_PLAIN = re.compile(rb"[.eEIN\\]")


def validated_body(request, model, validate):
    """The body as `model`, validated once from its bytes when that is sure to agree with `body`'s rules.

    A body of `application/json` (as sent) whose bytes are plain (see
    `NOT_PLAIN`) parses to the same values with pydantic's JSON parser as with
    `body.parse_json` (a body that is not UTF-8, not JSON or not an object
    fails the model), so it is validated straight from its bytes, without
    building the dict first. pydantic's parser lets the last of a repeated
    key win where `body` refuses the body (400): so the quick way's model
    counts only if the body has one `:` per field it set, which no repeated
    key, nested object or `:` inside a string passes. Any other body, and
    any body the model refuses, takes the general way: parsed by `body`,
    then validated, so every refusal is the problem it always was.
    """
    environ = request.environ
    if environ.get("CONTENT_TYPE") == "application/json":
        data = request.get_data()
        if data and NOT_PLAIN.search(data) is None:
            try:
                validated = model.__pydantic_validator__.validate_json(data)
            except ValidationError:
                validated = None  # said again below, with the problem the general way gives (a 400 if not JSON)
            # one `:` per field set: each key once (`body` refuses a repeated key), no nested object, no `:` in a string
            if validated is not None and data.count(b":") == len(validated.model_fields_set):
                return validated
    data = request.get_json(silent=True)  # a dict or None: see `bankapp.web.body`
    return model.model_validate_json(data) if isinstance(data, str) else validate(data)


class Blueprint(APIBlueprint):
    """`APIBlueprint` whose views validate their input with the wrapper above."""

    @staticmethod
    def create_view_func(
        func,
        header,
        cookie,
        path,
        query,
        form,
        body,
        raw,
        view_class=None,
        view_kwargs=None,
        responses=None,
        validate_response=None,
    ):
        general = (header or cookie or form or raw or view_class or inspect.iscoroutinefunction(func)) or getattr(
            func, "__delay_validate_request__", False
        )
        if general:
            library = APIBlueprint.create_view_func
            inputs = (header, cookie, path, query, form, body, raw)
            return library(func, *inputs, view_class, view_kwargs, responses, validate_response)
        validate_path = path.model_validate if path else None
        validate_body = body.model_validate if body else None

        @wraps(func)
        def view_func(**kwargs):
            func_kwargs = {}
            try:
                if validate_path is not None:
                    # every path parameter is the path model's (flask-openapi3 passes none of them on either)
                    func_kwargs["path"] = validate_path(kwargs)
                if query is not None:
                    _validate_query(query, func_kwargs)
                if validate_body is not None:
                    func_kwargs["body"] = validated_body(current_request(), body, validate_body)
            except ValidationError as error:
                abort(current_app_object().validation_error_callback(error))
            response = func(**func_kwargs)
            if responses:
                app = current_app_object()
                check = validate_response if validate_response is not None else getattr(app, "validate_response", None)
                if check:
                    return app.validate_response_callback(response, responses)
            return response

        if not hasattr(func, "view"):
            func.view = view_func
        return func.view
