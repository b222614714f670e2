# slac: ISO 15118-3 SLAC for asyncio. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
ENV_LOCAL ?= .env.dev.local
CS_CONFIG ?= cs_configuration.json
BENCH_OUT ?= benchmarks/results

.DEFAULT_GOAL := help
.PHONY: help install-local lock tests test-unit conformance lint docs config-table bench demo run-ev-slac powerline build dev run evse \
        run-local-single \
        run-local-multiple run-local-sudo-single run-local-sudo-multiple
EV_IFACE ?= eth0
EV_MODE ?= direct

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-26s %s\n", $$1, $$2}'

# Targets that need the virtual environment install it first when it is missing or older
# than the lock (so `make demo` and `make tests` work on a fresh clone).
STAMP := $(VENV)/.installed
$(STAMP): pyproject.toml poetry.lock scripts/install.sh scripts/poetry.sh
	./scripts/install.sh $(VENV)
	touch $@

install-local: ## Install the locked dependencies and slac into .venv (Poetry export + pip)
	./scripts/install.sh $(VENV)
	touch $(STAMP)

lock: ## Re-create poetry.lock (works where the index serves only pip's simple API)
	./scripts/poetry.sh --version >/dev/null && .tools/poetry/bin/python scripts/lock.py

# `make tests` runs the suite and, beside it, the conformance suites (their cases mostly wait
# on the standard's timers): their output follows the suite's; either failing fails it.
CONFORMANCE_WORKERS ?= 12
CONFORMANCE_LOG ?= $(VENV)/conformance.log
tests: $(STAMP) ## The whole test suite, the conformance suites beside it (root for most)
	@$(MAKE) --no-print-directory conformance > $(CONFORMANCE_LOG) 2>&1 & conformance=$$!; \
	$(PY) -m pytest -ra --ignore=tests/conformance; suite=$$?; \
	echo "== conformance suites (make conformance), log $(CONFORMANCE_LOG)"; \
	wait $$conformance; status=$$?; cat $(CONFORMANCE_LOG); \
	[ $$suite -eq 0 ] && [ $$status -eq 0 ]

test-unit: $(STAMP) ## The unit tests (tests/unit): no root, no sockets, no network; under a minute
	$(PY) -m pytest -ra tests/unit

conformance: $(STAMP) ## ISO 15118-5 SLAC cases, SECC and EVCC, in parallel (root; about 11 min)
	$(PY) -m pytest -ra -n $(CONFORMANCE_WORKERS) --maxschedchunk=1 tests/conformance

lint: $(STAMP) ## ruff, mypy (strict) and hadolint (Dockerfile)
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/ruff check slac examples tests benchmarks scripts
	$(VENV)/bin/ruff format --check slac examples tests benchmarks scripts
	$(VENV)/bin/mypy

# The documentation site (mkdocs.yml, docs/): every warning, a broken link or anchor among
# them, fails the build; tests/unit/test_docs.py runs this target.
SITE_DIR ?= site
docs: $(STAMP) ## Build the documentation site (MkDocs, docs/) into site/, warnings as errors
	$(VENV)/bin/mkdocs build --strict --site-dir $(abspath $(SITE_DIR))

# The configuration table (docs/configuration.md) is made from the settings' declarations
# (slac/config.py, slac/app/settings.py); tests/unit/test_config.py fails while it differs.
# It is rewritten in the first of these files that has the config-table markers.
CONFIG_TABLE_FILES ?= README.md docs/configuration.md
config-table: $(STAMP) ## Rewrite the configuration table (docs/configuration.md) from slac/config.py
	$(PY) -m slac config --update $(CONFIG_TABLE_FILES)

bench: $(STAMP) ## Benchmarks (root, < 10 min): codecs vs scapy, EVSE CPU, car park, latency and scale vs Qualcomm evse
	mkdir -p $(BENCH_OUT)
	$(PY) benchmarks/codecs.py --json $(BENCH_OUT)/codecs.json $(BENCH_CODECS_ARGS)
	$(PY) benchmarks/evse_cpu.py --json $(BENCH_OUT)/evse_cpu.json $(BENCH_CPU_ARGS)
	$(PY) benchmarks/carpark.py --json $(BENCH_OUT)/carpark.json --md $(BENCH_OUT)/carpark.md $(BENCH_CARPARK_ARGS)
	$(PY) benchmarks/scale.py --out $(BENCH_OUT) $(BENCH_SCALE_ARGS)

demo: $(STAMP) ## SLAC from plug-in to IPv6 on a virtual powerline: no modem needed (root)
	$(PY) scripts/demo.py

powerline: $(STAMP) ## Run a virtual powerline with 1 EV and 1 EVSE host until Ctrl-C (root)
	$(PY) -m slac.testing.powerline --evs 1 --evses 1

run-ev-slac: $(STAMP) ## EV simulator (scapy) on EV_IFACE (default eth0), EV_MODE direct|powerline
	$(PY) examples/ev_slac_scapy.py --iface $(EV_IFACE) --mode $(EV_MODE) $(EV_ARGS)

# Docker (README: "Docker"). BASE_IMAGE: the base of both stages (empty: the Dockerfile's,
# the official Python image; slac-base:bookworm from scripts/docker-base.sh where Docker Hub
# cannot be reached). The host pip's index settings go to the build stage as build
# arguments (scripts/host-pip-env.sh). Builds use the host's network. COMPOSE: Compose v2
# (`docker compose`) where the docker command has it, else docker-compose.
IMAGE ?= slac
BASE_IMAGE ?=
NETWORK ?= host
PCAP_DIR ?= pcap
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
PIP_BUILD_ARGS := PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_TRUSTED_HOST
COMPOSE_ENV = SLAC_DOCKER_IMAGE=$(IMAGE) SLAC_DOCKER_CONFIG=$(abspath $(CS_CONFIG)) \
	SLAC_DOCKER_NETWORK=$(NETWORK) SLAC_DOCKER_PCAP=$(abspath $(PCAP_DIR)) \
	$(if $(BASE_IMAGE),BASE_IMAGE=$(BASE_IMAGE))
build: ## Build the Docker image IMAGE (multi-stage, Poetry 2; BASE_IMAGE: its base)
	scripts/host-pip-env.sh docker build --network=host $(addprefix --build-arg ,$(PIP_BUILD_ARGS)) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .

dev: ## Build and run the image: .env.dev.docker, CP typed on stdin (docker attach), pcap in ./pcap
	scripts/host-pip-env.sh env $(COMPOSE_ENV) \
		$(COMPOSE) -f docker-compose.yml -f docker-compose.dev.yml up --build

run: ## Build and run the image detached: .env.prod.docker (CP over MQTT, JSON logs), restarts
	scripts/host-pip-env.sh env $(COMPOSE_ENV) \
		$(COMPOSE) -f docker-compose.yml -f docker-compose.prod.yml up --build -d

evse: $(STAMP) ## `slac evse`: every EVSE of cs_configuration.json, CP typed on stdin (root)
	$(VENV)/bin/slac evse --config $(CS_CONFIG) --env $(ENV_LOCAL) $(EVSE_ARGS)

run-local-single: $(STAMP) ## Example: one EVSE (cs_configuration.json, .env.dev.local)
	$(PY) examples/single_slac_session.py --config $(CS_CONFIG) --env $(ENV_LOCAL) $(EXAMPLE_ARGS)

run-local-multiple: $(STAMP) ## Example: every EVSE of cs_configuration.json
	$(PY) examples/multiple_slac_sessions.py --config $(CS_CONFIG) --env $(ENV_LOCAL) $(EXAMPLE_ARGS)

run-local-sudo-single: ## run-local-single as root (raw sockets need root or CAP_NET_RAW)
	sudo $(PY) examples/single_slac_session.py --config $(CS_CONFIG) --env $(ENV_LOCAL) $(EXAMPLE_ARGS)

run-local-sudo-multiple: ## run-local-multiple as root
	sudo $(PY) examples/multiple_slac_sessions.py --config $(CS_CONFIG) --env $(ENV_LOCAL) $(EXAMPLE_ARGS)
