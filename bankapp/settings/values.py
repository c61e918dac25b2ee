"""Values every layer reads the same way: the one rule for whole numbers in JSON, and a database URL with
its password hidden. Re-exported by `bankapp.settings`."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

#: Numbers from this on are refused, not converted: `int()` of
#: `1e999999999` would spend seconds building a billion digits.
LARGEST_WHOLE_NUMBER = Decimal(10**18)


def whole_number(value: Any) -> Any:
    """The one rule for integers in JSON, for every amount, quantity and setting.

    JSON has one number type, and JSON Schema's `integer` (so the OpenAPI
    document) is any number without a fractional part: `100`, `100.0` and
    `1e2` are the integer 100. Any other number is refused, however close:
    `0.99999999999999999999` is not 1. The body parser keeps such a literal
    as a `Decimal` (see `bankapp.web.body`); as a float it would already be
    1.0. Booleans and strings pass through, for the strict models to refuse.
    """
    if not isinstance(value, float | Decimal):
        return value
    if (value.copy_abs() if isinstance(value, Decimal) else abs(value)) >= LARGEST_WHOLE_NUMBER:
        raise PydanticCustomError("int_too_large", "Input should be a valid integer of at most 18 digits")
    if value != int(value):
        raise PydanticCustomError(
            "int_from_fraction",
            "Input should be a valid integer: {number} is not a whole number",
            {"number": f"{value}"},
        )
    return int(value)


WholeNumber = Annotated[int, BeforeValidator(whole_number)]


def hide_password(url: str | None) -> str | None:
    """A libpq URL or key=value string with its password replaced by `***`.

    `postgresql://bank:secret@db/bankapp` -> `postgresql://bank:***@db/bankapp`;
    `host=db password=secret` -> `host=db password=***`; a `password=`
    query parameter is hidden too.
    """
    if not url:
        return url
    url = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", r"\1***", url, flags=re.IGNORECASE)
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))
