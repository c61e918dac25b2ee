"""docker-compose.yml read as Compose reads it, and its services brought to loopback.

No container engine runs here, so the tests take the compose file at its
word: `load()` parses it and interpolates `${VARIABLE:-default}` the way
Compose does (the forms the file uses; any other form is an error, not a
guess); `argv()` is what a service's container runs (its `entrypoint`, else
the Dockerfile's `ENTRYPOINT`, then its `command`); `Loopback` rewrites
what names another container (`app:8000`, `master`) to 127.0.0.1 and the
port the test started that service on. `render_nginx()` does what the nginx
image's entrypoint does with `deploy/nginx/*.template` (envsubst with the
container's environment) inside a stand-in for the image's stock
`nginx.conf`, in a prefix of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

import dockerfile
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "default.conf.template"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

# $$ | ${NAME} | ${NAME:-default} ${NAME-default} ${NAME:?message} ${NAME?message} | $NAME
VARIABLE = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>.*))?$", re.DOTALL)


class Unset(LookupError):
    """A `${NAME:?message}` whose variable is not set: Compose refuses to start, saying `message`."""


def interpolate_string(text: str, environ: Mapping[str, str]) -> str:
    def one(match: re.Match) -> str:
        if match["dollar"]:
            return "$"
        if match["bare"]:
            return environ.get(match["bare"], "")
        parts = BRACED.match(match["braced"])
        if not parts:
            raise ValueError(f"interpolation Compose would not read the way this test does: {match[0]!r}")
        name, op, arg = parts["name"], parts["op"], parts["arg"]
        value = environ.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if missing else value
        if op in (":?", "?"):
            if missing:
                raise Unset(f"{name}: {arg}")
            return value
        return value or ""

    return VARIABLE.sub(one, text)


def interpolate(node, environ: Mapping[str, str]):
    """Every string value, as Compose does it (keys are left alone)."""
    if isinstance(node, str):
        return interpolate_string(node, environ)
    if isinstance(node, list):
        return [interpolate(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, environ) for key, value in node.items()}
    return node


def load(environ: Mapping[str, str] | None = None, path: Path = COMPOSE_FILE) -> dict:
    """The compose file, interpolated with `environ` (an empty shell by default, so defaults apply)."""
    return interpolate(yaml.safe_load(path.read_text()), environ or {})


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[dockerfile.Command]:
    """The Dockerfile read by BuildKit's own parser (the `dockerfile` package)."""
    return list(dockerfile.parse_file(str(path)))


def image_entrypoint() -> list[str]:
    (entrypoint,) = [command for command in dockerfile_instructions() if command.cmd == "ENTRYPOINT"]
    assert entrypoint.json, "ENTRYPOINT in exec form, so that signals reach the process"
    return list(entrypoint.value)


def argv(service: dict) -> list[str]:
    """What the service's container runs. Our image's services only; string forms are refused."""
    entrypoint = service.get("entrypoint", image_entrypoint())
    command = service.get("command", [])
    assert isinstance(entrypoint, list) and isinstance(command, list), "exec form: lists, not shell strings"
    return [str(part) for part in (*entrypoint, *command)]


def option(args: list[str], flag: str) -> str:
    """The value given to `flag` (the last one wins, as in argparse)."""
    values = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]
    assert values, f"{flag} not in {args}"
    return values[-1]


def replace_option(args: list[str], flag: str, value: str) -> list[str]:
    option(args, flag)
    return [value if i > 0 and args[i - 1] == flag else arg for i, arg in enumerate(args)]


class Loopback:
    """Where each service of the compose file answers on this machine: `{"app": 41234, "master": 0}`.

    Compose gives each service a host name on the project's network; here
    every one is 127.0.0.1, on the port the test started it on. A service
    named with its port (`app:8000`, in a URL or alone) gets that port; one
    named alone as the value of a `--...-host` flag (`--master-host master`)
    keeps the port its flags say (the test gives Locust's master and workers
    one of their own). Any other word is left alone: `--store postgres` is
    a store, not a host.
    """

    def __init__(self, services: Mapping[str, dict], ports: Mapping[str, int]):
        self.names = set(services)
        self.ports = dict(ports)

    def value(self, text: str) -> str:
        for name, port in self.ports.items():
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}:\d+\b", f"127.0.0.1:{port}", text)
        return text

    def args(self, args: list[str]) -> list[str]:
        local = [self.value(arg) for arg in args]
        for i, arg in enumerate(local[:-1]):
            if arg.startswith("--") and arg.endswith("-host") and local[i + 1] in self.ports:
                local[i + 1] = "127.0.0.1"
        self.check(local)
        return local

    def environment(self, environment: Mapping[str, str]) -> dict[str, str]:
        local = {key: self.value(str(value)) for key, value in environment.items()}
        self.check(list(local.values()))
        return local

    def check(self, values: list[str]) -> None:
        """Nothing may still name a container: it would not resolve here, and the test would prove nothing."""
        for i, text in enumerate(values):
            for name in self.names:
                named = re.search(rf"(?<![\w.-]){re.escape(name)}:\d+\b", text)
                host_flag = i > 0 and values[i - 1].endswith("-host") and text == name
                assert not (named or host_flag), f"{text!r} still names the service {name!r}"


def envsubst(template: str, environ: Mapping[str, str]) -> str:
    """What the nginx image's `20-envsubst-on-templates.sh` does: `$NAME` and `${NAME}` of the variables
    that are set are replaced; every other `$` (nginx's own `$host`, ...) is left as it is."""
    for name, value in environ.items():
        template = template.replace("${" + name + "}", value)
        template = re.sub(rf"\${re.escape(name)}(?![A-Za-z0-9_])", lambda _m, v=value: v, template)
    return template


# The nginx image's stock nginx.conf, reduced to what matters here: conf.d/*.conf inside http {}.
NGINX_MAIN = """\
worker_processes 1;
pid nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    include conf.d/*.conf;
}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))


def render_nginx(environ: Mapping[str, str], template: str | None = None) -> Path:
    """A prefix folder with `nginx.conf` and `conf.d/default.conf` rendered from the template.

    The folder is made outside pytest's private tmp (mode 0700 all the way
    up) and opened to others, because nginx's workers run as `nobody`
    under root and write their buffers into `temp/`. The caller removes it.
    """
    prefix = Path(tempfile.mkdtemp(prefix="bankapp-nginx-"))
    prefix.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    (prefix / "conf.d").mkdir()
    (prefix / "temp").mkdir()
    (prefix / "nginx.conf").write_text(NGINX_MAIN)
    text = NGINX_TEMPLATE.read_text() if template is None else template
    rendered = envsubst(text, environ)
    assert "${" not in rendered, "a variable of the template is not in the proxy's environment"
    (prefix / "conf.d" / "default.conf").write_text(rendered)
    return prefix


def nginx_command(binary: str, prefix: Path, *extra: str) -> list[str]:
    return [binary, "-e", "stderr", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), *extra]
