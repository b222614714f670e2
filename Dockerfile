# slac: the station's EVSEs as a service (`slac evse`). Raw sockets need host networking and
# NET_RAW; docker-compose.yml sets both:
#   docker compose -f docker-compose.yml -f docker-compose.dev.yml up --build     (make dev)
# Two stages: Poetry 2 exports poetry.lock with its hashes and pip installs it into
# /app/.venv (scripts/install.sh --prod, the same script `make install-local` runs); the
# runtime image gets that virtual environment only.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml poetry.lock README.md LICENSE ./
COPY scripts ./scripts
COPY slac ./slac
RUN ./scripts/install.sh --prod /app/.venv

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY cs_configuration.json ./
ENTRYPOINT ["/app/.venv/bin/slac", "evse"]
CMD ["--config", "cs_configuration.json"]
