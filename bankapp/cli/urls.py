"""`bankapp urls`: what to open once the lab runs, in containers or not.

`docker compose up` publishes the proxy in front of the service (dashboard,
API, docs, metrics) on port 8000, Locust's web UI on 8089 and, with the
`prometheus` profile, Prometheus on 9090; these are the defaults here, and a
test holds them to `docker-compose.yml`. The admin token never travels in a
URL: the dashboard asks for it at the first control pressed and keeps it in
the tab (`sessionStorage`), and Locust's master is given it by the compose
file (`LOCUST_ADMIN_TOKEN`).

Example::

    bankapp urls                              # on the laptop that runs docker compose up
    bankapp urls --host 192.168.1.20          # what the room types, with BANKAPP_PUBLISH=0.0.0.0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: The ports docker-compose.yml publishes.
PROXY_PORT = 8000
LOCUST_PORT = 8089
PROMETHEUS_PORT = 9090
#: The token docker-compose.yml falls back on when BANKAPP_ADMIN_TOKEN is not set.
COMPOSE_DEFAULT_TOKEN = "workshop"


@dataclass(frozen=True)
class Link:
    name: str
    url: str
    note: str


def links(host: str, port: int, locust_port: int, prometheus_port: int) -> list[Link]:
    """Every page of the lab with what it is for, in the order a room opens them."""
    lab = f"http://{host}:{port}"
    return [
        Link("dashboard", f"{lab}/", "the guard in force, lost cents, in flight, deadlocks; flip guards live"),
        Link("Locust", f"http://{host}:{locust_port}/", "pick user classes, Start; the verdict in its own tab"),
        Link("API docs", f"{lab}/docs", "every route, tried from the browser (Swagger UI)"),
        Link("metrics", f"{lab}/metrics", "Prometheus text format"),
        Link("Prometheus", f"http://{host}:{prometheus_port}/", "only with: docker compose --profile prometheus up"),
    ]


def token_line(environ: Mapping[str, str]) -> str:
    # never printed: this is the command an instructor runs with the projector on
    if environ.get("BANKAPP_ADMIN_TOKEN", "").strip():
        where = "the value of BANKAPP_ADMIN_TOKEN in this environment (not shown here)"
    else:
        where = (
            f"BANKAPP_ADMIN_TOKEN as given to docker compose ({COMPOSE_DEFAULT_TOKEN!r} if it was not set), "
            "or the token bankapp serve printed at start"
        )
    return (
        f"admin token: {where}\n"
        "    the dashboard asks for it at the first button you press and keeps it in that tab;\n"
        "    curl sends it as -H 'Authorization: Bearer <token>'"
    )


def render(host: str, port: int, locust_port: int, prometheus_port: int, environ: dict[str, str] | None = None) -> str:
    found = links(host, port, locust_port, prometheus_port)
    width = max(len(link.name) for link in found)
    width_url = max(len(link.url) for link in found)
    lines = [f"  {link.name:<{width}}  {link.url:<{width_url}}  {link.note}" for link in found]
    return "\n".join(["bankapp lab:", *lines, token_line(os.environ if environ is None else environ)])
