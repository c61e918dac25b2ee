# syntax=docker/dockerfile:1
# bankapp in a container: the service (`bankapp serve`) and Locust (`locust -f /opt/bankapp/locustfile.py`),
# one image for both. docker-compose.yml builds it; alone:
#   docker build -t bankapp . && docker run --rm -p 8000:8000 bankapp   # memory store; prints its admin token
# Stage 1 builds the wheel (with the dashboard's templates, script and vendored uPlot, and the loadtests
# package) and installs it with the Locust extra into a virtual environment, at the versions of
# constraints.txt. Stage 2 is the slim runtime: that environment, a non-root user, nothing else.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY bankapp ./bankapp
COPY loadtests ./loadtests
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --constraint constraints.txt "$(echo /dist/bankapp-*.whl)[load]"

FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/bankapp bankapp
COPY --from=build /opt/venv /opt/venv
# The project's locustfile, installed inside the loadtests package, at a path that names no Python version.
RUN mkdir /opt/bankapp \
    && ln -s "$(python -c 'import loadtests, pathlib; print(pathlib.Path(loadtests.__file__).with_name("locustfile.py"))')" \
        /opt/bankapp/locustfile.py
USER 10001:10001
WORKDIR /home/bankapp
# 8000 the service, 8089 Locust's web UI, 5557 Locust's master for its workers
EXPOSE 8000 8089 5557
# /healthz answers 503 while the store is down; the port is BANKAPP_PORT's, else the default 8000.
# (The Locust services of docker-compose.yml turn this check off.)
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BANKAPP_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["bankapp"]
CMD ["serve", "--host", "0.0.0.0"]
