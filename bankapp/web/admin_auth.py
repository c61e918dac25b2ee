"""Who may use `/admin/*`: one check before the view (see `every_request`), and the serve-time token.

- No `admin_token` set: the admin routes answer loopback clients only. That is
  the laptop case (the server binds 127.0.0.1 by default); a plain
  `gunicorn bankapp.wsgi:app --bind 0.0.0.0` without a token still does not
  hand the settings to the whole room.
- `admin_token` set: every admin request needs `Authorization: Bearer <token>`,
  from anywhere. Missing: 401 with `WWW-Authenticate` (RFC 6750); wrong: 403.
  The comparison takes the same time whatever the guess (`hmac.compare_digest`),
  so timing the answers does not reveal the token a character at a time.
- `bankapp serve` bound to anything but loopback without a token makes one
  (`secrets.token_urlsafe`) and prints it once at start, as Jupyter does.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from flask import Request

from ..settings import Config
from .problems import Problem

ADMIN_PREFIX = "/admin"
SECURITY_SCHEMES = {
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "admin_token; not needed from loopback when no admin_token is set",
    }
}
CHALLENGE = 'Bearer realm="bankapp admin"'


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def is_loopback(address: str | None) -> bool:
    """127.0.0.0/8, ::1 (and `localhost`, as a host to bind)."""
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def require_admin_token(request: Request, config: Config) -> None:
    """The check before every admin route's view (and unknown `/admin/...`
    paths, so that they do not reveal which routes exist); others pass."""
    if not is_admin_path(request.path):
        return
    token = config.admin_token
    if token is None:
        if is_loopback(request.remote_addr):
            return
        raise Problem(
            403,
            "admin-loopback-only",
            "Forbidden",
            "admin routes answer loopback clients only while no admin_token is set; start the server with "
            "--admin-token (or BANKAPP_ADMIN_TOKEN) to use them from elsewhere",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Problem(
            401,
            "unauthorized",
            "Unauthorized",
            "admin routes need an 'Authorization: Bearer <admin_token>' header",
            headers={"WWW-Authenticate": CHALLENGE},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Problem(403, "forbidden", "Forbidden", "the bearer token is not the admin_token")


def document(operation: dict) -> None:
    """Either the token or nothing (`{}`): the document says both are accepted,
    since loopback without a token is open."""
    operation["security"] = [{"adminToken": []}, {}]


def token_for_binding(config: Config) -> tuple[Config, str | None]:
    """The config to serve, and the token made for it if one had to be made.

    Bound to loopback, or with a token given, nothing changes. Bound elsewhere
    without one, a random token is made here, once, in the gunicorn master,
    before any worker starts: every worker serves the same token.
    """
    if config.admin_token or is_loopback(config.host):
        return config, None
    token = secrets.token_urlsafe(32)
    return config.model_copy(update={"admin_token": token}), token
