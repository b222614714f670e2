# slac: the EVSE examples in a container. Raw sockets need host networking and NET_RAW:
#   docker run --rm --network host --cap-add NET_RAW --env-file .env.dev.docker slac
# The image installs exactly what `make install-local` installs (scripts/install.sh:
# poetry.lock exported with hashes, installed with pip into /app/.venv).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml poetry.lock README.md LICENSE ./
COPY scripts ./scripts
COPY slac ./slac
COPY examples ./examples
COPY cs_configuration.json ./
RUN ./scripts/install.sh /app/.venv && rm -rf /app/.tools /root/.cache

ENTRYPOINT ["/app/.venv/bin/python", "examples/multiple_slac_sessions.py"]
CMD ["--config", "cs_configuration.json"]
