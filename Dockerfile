# slac: the station's EVSEs as a service (`slac evse`). Raw sockets need the NET_RAW
# capability and the modem's interface (host networking); docker-compose.yml sets both:
#   make build     docker build --network=host -t slac .        (README: "Docker")
#   make dev       compose: docker-compose.yml + docker-compose.dev.yml, CP typed on stdin
# Two stages: Poetry 2 exports poetry.lock with its hashes and pip installs it into
# /app/.venv (scripts/install.sh --prod, the same script `make install-local` runs); the
# runtime image gets that virtual environment only: no Poetry, no sources, no tests.
#
# BASE_IMAGE: any Debian bookworm image with python3 and python3-venv. Default: the official
# Python image. Where Docker Hub cannot be reached, scripts/docker-base.sh makes one from
# the host's Debian mirror (make build BASE_IMAGE=slac-base:bookworm).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# the host pip's index settings (scripts/host-pip-env.sh, read at build time, never written
# into a file): build arguments of this stage only, so the runtime image does not carry them
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_TRUSTED_HOST
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Poetry and its export plugin in a layer of their own: rebuilt only when poetry.sh changes
COPY scripts/poetry.sh ./scripts/
RUN ./scripts/poetry.sh --version
COPY pyproject.toml poetry.lock README.md LICENSE ./
COPY scripts ./scripts
COPY slac ./slac
# pip and setuptools leave the runtime environment: slac does not need them there (22 MB)
RUN ./scripts/install.sh --prod /app/.venv \
    && /app/.venv/bin/python -m pip uninstall --yes --quiet pip setuptools

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY cs_configuration.json ./
# SIGTERM (docker stop): every EVSE whose EV has the key gives its modem a fresh one, then
# the process exits 0, within Docker's 10 s
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/.venv/bin/slac", "evse"]
CMD ["--config", "cs_configuration.json"]
