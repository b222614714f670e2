# slac: ISO 15118-3 SLAC for asyncio. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
ENV_LOCAL ?= .env.dev.local
CS_CONFIG ?= cs_configuration.json
BENCH_OUT ?= benchmarks/results

.DEFAULT_GOAL := help
.PHONY: help install-local lock tests lint bench demo run-ev-slac powerline build dev run evse \
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

tests: $(STAMP) ## Run the whole test suite (integration tests need root)
	$(PY) -m pytest -ra

lint: $(STAMP) ## ruff, mypy (strict) and hadolint (Dockerfile)
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/ruff check slac examples tests benchmarks scripts
	$(VENV)/bin/ruff format --check slac examples tests benchmarks scripts
	$(VENV)/bin/mypy

bench: $(STAMP) ## Benchmarks (root, < 10 min): codecs vs scapy, EVSE CPU, car park, latency and scale vs Qualcomm evse
	mkdir -p $(BENCH_OUT)
	$(PY) benchmarks/codecs.py --json $(BENCH_OUT)/codecs.json $(BENCH_CODECS_ARGS)
	$(PY) benchmarks/evse_cpu.py --json $(BENCH_OUT)/evse_cpu.json $(BENCH_CPU_ARGS)
	$(PY) benchmarks/carpark.py --json $(BENCH_OUT)/carpark.json --md $(BENCH_OUT)/carpark.md $(BENCH_CARPARK_ARGS)
	$(PY) benchmarks/scale.py --out $(BENCH_OUT) $(BENCH_SCALE_ARGS)

demo: $(STAMP) ## SLAC from plug-in to IPv6 on a virtual powerline: no modem needed (root)
	$(PY) scripts/demo.py

powerline: $(STAMP) ## Run a virtual powerline with 1 EV and 1 EVSE host until Ctrl-C (root)
	$(PY) -m slac.powerline --evs 1 --evses 1

run-ev-slac: $(STAMP) ## EV simulator (scapy) on EV_IFACE (default eth0), EV_MODE direct|powerline
	$(PY) examples/ev_slac_scapy.py --iface $(EV_IFACE) --mode $(EV_MODE) $(EV_ARGS)

IMAGE ?= slac
COMPOSE ?= docker compose
build: ## Build the Docker image (multi-stage, Poetry 2; needs a Docker engine)
	docker build -t $(IMAGE) .

dev: ## Run the image: .env.dev.docker, CP typed on stdin (docker attach), pcap in ./pcap
	$(COMPOSE) -f docker-compose.yml -f docker-compose.dev.yml up --build

run: ## Run the image detached: .env.prod.docker (CP over MQTT, JSON logs), restarts
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
