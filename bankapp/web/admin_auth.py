"""Who may use the server and `/admin/*`: the Host and cross-site checks and the admin check before the view (see
`every_request`), and the serve-time token.

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

Host names and cross-site requests (`check_host`, `check_same_site`):

Two attacks from an ordinary web page the instructor happens to open, with
the lab on loopback and no token (the laptop case):

- DNS rebinding: a page of `evil.example` makes its own name resolve to
  127.0.0.1, then reads the lab as same-origin (`/stats`) and drives it
  (`PATCH /admin/config`). Its requests carry `Host: evil.example:8000`.
  As Jupyter, Vite and Rails' host authorization do, the server answers only
  the Host names it is reached by: loopback names (`localhost`,
  `127.0.0.1`, `[::1]`), any IP address (a rebinding page has a name, not an
  address: an address as Host is the browser's own origin), the bound host,
  and the names of `allowed_hosts` (a room's name, a proxy's upstream name;
  `*` answers any). Any other Host is a 421 problem, before the view.
- Cross-site requests: a page of another origin POSTs a form or a
  `text/plain` fetch (no preflight) to `/admin/reset`. The browser says
  where the request comes from (`Sec-Fetch-Site`, `Origin`): an admin state
  change (POST, PATCH, PUT, DELETE) whose `Sec-Fetch-Site` is neither
  `same-origin` nor `none` (typed by the user), or whose `Origin` is not
  this server's, is a 403 problem unless it carries the admin token. The
  dashboard's own buttons are same-origin, and curl sends neither header.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

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


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
STATE_CHANGES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
SAME_SITE = frozenset({"same-origin", "none"})


def host_name(host: str) -> str:
    """The name in a Host header, without its port: `[::1]:8000` -> `::1`, `Lab.Example.:80` -> `lab.example`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.rstrip(".")


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=16)
def allowed_names(bound: str, allowed_hosts: str) -> frozenset[str]:
    """The names answered besides IP addresses: loopback names, the bound host, `allowed_hosts` (`*`: any)."""
    names = {host_name(name) for name in allowed_hosts.split(",") if name.strip()}
    return frozenset(LOOPBACK_NAMES | names | {host_name(bound)})


def host_allowed(host: str | None, config: Config) -> bool:
    if not host:  # HTTP/1.0 without Host: no name to rebind
        return True
    names = allowed_names(config.host, config.allowed_hosts)
    name = host_name(host)
    return "*" in names or name in names or is_address(name)


def check_host(request: Request, config: Config) -> None:
    """421 for a Host this server is not reached by (see the module)."""
    host = request.environ.get("HTTP_HOST")
    if not host or host_allowed(host, config):
        return
    raise Problem(
        421,
        "unknown-host",
        "Misdirected request",
        f"this server does not answer the host name {host_name(host)!r}: it answers loopback names, IP addresses, "
        "its bound host and allowed_hosts; to serve it under that name, start it with --allowed-hosts "
        f"{host_name(host)} (or BANKAPP_ALLOWED_HOSTS)",
        host=host,
    )


def check_same_site(request: Request, config: Config) -> None:
    """403 for an admin state change a browser sent from another site, unless it carries the admin token."""
    environ = request.environ
    if environ.get("REQUEST_METHOD") not in STATE_CHANGES or not is_admin_path(request.path):
        return
    fetch_site = environ.get("HTTP_SEC_FETCH_SITE")
    origin = environ.get("HTTP_ORIGIN")
    if fetch_site is not None and fetch_site.lower() in SAME_SITE:
        cross = None
    elif fetch_site is not None:
        cross = f"Sec-Fetch-Site: {fetch_site}"
    elif origin is not None and not same_origin(origin, environ.get("HTTP_HOST")):
        cross = f"Origin: {origin}"
    else:
        cross = None
    if cross is None or has_admin_token(request, config):
        return
    raise Problem(
        403,
        "cross-site-admin",
        "Cross-site request refused",
        f"an admin state change from another site ({cross}) needs 'Authorization: Bearer <admin_token>': a web "
        "page open in a browser must not drive the lab; the dashboard served by this server is same-site",
        origin=origin,
    )


def same_origin(origin: str, host: str | None) -> bool:
    """`Origin: http://127.0.0.1:8000` against `Host: 127.0.0.1:8000` (`null`, a sandboxed page, is never)."""
    if not host or origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


def has_admin_token(request: Request, config: Config) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    token = config.admin_token
    if not token:
        return False
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
