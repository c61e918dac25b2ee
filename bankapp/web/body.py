"""One body reader for every route: the whole body, then one JSON parse.

Every view that takes JSON gets its body from here, through Flask's
`request.get_json()` (flask-openapi3 validates with it, `Idempotency-Key`
fingerprints it, `PATCH /admin/config` reads it), so the rules below hold
everywhere, whatever the framing:

- the body is read whole, as `Content-Length` says or to the end of a
  chunked body, and refused with 413 above `MAX_BODY_BYTES` either way. A
  chunked body has no length to check up front: reading stops one byte past
  the limit, which is proof enough;
- a body shorter than its `Content-Length` (the client half-closed before
  sending the rest) is a 400, and nothing of it is applied;
- a framing error found while reading (a chunk size that is not hex, a chunk
  without its CRLF) is a 400, and a body the client did not finish sending
  within the server's read deadline is a 408 (see `bankapp.server.worker`). gunicorn
  raises these as its `ParseException`s, which carry no status: `status` on
  the exception (our worker's `RequestTimeout`) says 408, the rest are 400,
  as is a body cut short by a client that went away;
- a body that is not `application/json` is a 415; bytes that are not JSON a
  400, and so is an object with a key twice (`{"amount":-5,"amount":1}`);
  a top-level value that is not an object (`"{\\"amount\\": 7}"` is a
  string, not an object) a 422, as an object with a wrong field is;
- nesting deeper than `MAX_DEPTH` is a 400. Python's parser recurses once per
  level, so 100,000 `[` would otherwise end in a `RecursionError` (a 500);
- a number with a fraction or an exponent is parsed as a `Decimal`, never a
  float: `0.99999999999999999999` stays what the client wrote and cannot be
  rounded into the integer 1 before the models see it (see
  `bankapp.settings.whole_number` for the one rule on integral numbers).
  `NaN` and `Infinity` are not JSON and are refused.

Without a body (no `Content-Length`, not chunked) `get_json()` is None, and
the models say what is missing (422).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from flask import Request
from gunicorn.http.errors import ParseException
from werkzeug.wsgi import get_input_stream

from .problems import Problem

#: Bodies above this answer 413, whatever their framing.
MAX_BODY_BYTES = 1024 * 1024
#: Deepest nesting of arrays and objects a body may have (`{"amounts": [1]}` is 2).
MAX_DEPTH = 32

_UNREAD = object()


def read_body(environ: dict, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body of the request, or the 413/400/408 problem that says why not."""
    length = environ.get("CONTENT_LENGTH")
    length = int(length) if length and length.isdigit() else None
    if length is not None and length > limit:
        raise too_large(limit)
    if "wsgi.input_terminated" in environ:
        # gunicorn ends the stream itself: at Content-Length, or after the last chunk
        stream, wanted = environ["wsgi.input"], limit + 1 if length is None else length
    else:
        stream, wanted = get_input_stream(environ, max_content_length=None), length or 0
    try:
        data = stream.read(wanted) if wanted else b""
    except ParseException as error:
        status = getattr(error, "status", 400)
        if status == 413:  # a chunk announced bigger than any body (`bankapp.chunks`)
            raise Problem(413, "content-too-large", "Content too large", str(error)) from None
        slug = "request-timeout" if status == 408 else "malformed-body"
        title = "Request timeout" if status == 408 else "Malformed body"
        raise Problem(status, slug, title, f"the request body could not be read: {error}") from None
    except OSError as error:  # the client went away mid-body: nobody will read this, but it is no server fault
        raise Problem(400, "incomplete-body", "Incomplete body", f"the request body ended early: {error}") from None
    if len(data) > limit:
        raise too_large(limit)
    if length is not None and len(data) < length:
        # the client stopped (a half-close) before the body it announced was whole: nothing of it is applied
        raise Problem(
            400,
            "incomplete-body",
            "Incomplete body",
            f"the request body ended after {len(data)} of the {length} bytes its Content-Length announced",
        )
    return data


def too_large(limit: int) -> Problem:
    return Problem(413, "content-too-large", "Content too large", f"the request body is larger than {limit} bytes")


def parse_json(data: bytes) -> dict[str, Any]:
    """The JSON object in `data`, or the 400/422 problem that says why not."""
    try:
        # what json.loads does, with one decoder made once (json.loads with options makes one a call)
        value = DECODER.decode(data.decode(json.detect_encoding(data), "surrogatepass"))
    except RecursionError:
        raise too_deep() from None
    except DuplicateKey as error:
        raise Problem(400, "duplicate-json-key", "Duplicate JSON key", f"the request body {error}") from None
    except ValueError as error:  # JSONDecodeError, a bad encoding, an integer of 4,300+ digits
        raise Problem(400, "malformed-json", "Malformed JSON", f"the request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise Problem(
            422,
            "invalid-input",
            "Invalid input",
            f"body: expected a JSON object, got {_kind(value)}",
            errors=[{"field": "body", "message": "expected a JSON object", "type": "model_type"}],
        )
    # only a body with more brackets than the bound can be nested deeper than it
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise too_deep()
    return value


def too_deep() -> Problem:
    return Problem(
        400, "too-deeply-nested", "Too deeply nested", f"the request body nests arrays or objects over {MAX_DEPTH} deep"
    )


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON number")


class DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if a name repeats: `{"amount": -5, "amount": 1}` is ambiguous (RFC 8259 says
    names SHOULD be unique; parsers differ on which wins), and a validator upstream may have seen the other."""
    value = dict(pairs)
    if len(value) != len(pairs):
        repeated = first_repeated(name for name, _ in pairs)
        raise DuplicateKey(f"has the key {repeated!r} more than once in one object")
    return value


DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_not_json, object_pairs_hook=_object)


def _kind(value: Any) -> str:
    names = {str: "a string", list: "an array", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


class BodyRequest(Request):
    """Flask's request whose `get_data()` and `get_json()` follow the rules above.

    `get_json()` raises the problem instead of answering None when `silent`
    is asked for: flask-openapi3 asks for it, and a body that cannot be read
    is an error whoever reads it. Both are read once and cached.
    """

    _body: Any = _UNREAD
    _json: Any = _UNREAD

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False):
        if self._body is _UNREAD:
            self._body = read_body(self.environ)
        return self._body.decode() if as_text else self._body

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True):
        if self._json is _UNREAD:
            self._json = self._load_json()
        return self._json

    def _load_json(self) -> dict[str, Any] | None:
        data = self.get_data()
        if not data:
            return None
        # the usual Content-Type, as sent, is JSON without parsing the header as `is_json` does
        if self.environ.get("CONTENT_TYPE") != "application/json" and not self.is_json:
            raise Problem(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                f"Content-Type must be application/json, got {self.mimetype or 'none'}",
            )
        return parse_json(data)


def first_repeated(names: Iterable[str]) -> str:
    """The first name that comes a second time."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    raise ValueError("no name comes twice")
