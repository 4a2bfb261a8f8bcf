# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export CRYPTOTRACKER_WAREHOUSE ?= $(DAGSTER_HOME)/warehouse.duckdb
# Which instance file becomes $(DAGSTER_HOME)/dagster.yaml: dagster.yaml (embedded SQLite, default) or
# dagster.postgres.yaml (production storage; see README).
DAGSTER_INSTANCE ?= dagster.yaml
# The demo: >= 14 days of 1m bars for 10 coins across all tiers, on the embedded default (synthetic source).
DEMO_SYMBOLS ?= BTC,ETH,SOL,LINK,AVAX,ARB,DOGE,TRX,PEPE,WIF
DEMO_DAYS ?= 14
PYTEST_WORKERS ?= 2

.PHONY: run test ui up down bench install clean config-check

$(BIN)/.installed: pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: $(DAGSTER_INSTANCE)
	mkdir -p $(DAGSTER_HOME)
	cp $(DAGSTER_INSTANCE) $@

run: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/cryptotracker demo --symbols $(DEMO_SYMBOLS) --days $(DEMO_DAYS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

ui: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# Production-style: dagster-webserver and dagster-daemon (not `dagster dev`) on the instance of $(DAGSTER_HOME)
# (DAGSTER_INSTANCE=dagster.postgres.yaml for PostgreSQL), bound to 127.0.0.1; PIDs and logs under $(DAGSTER_HOME).
up: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m cryptotracker_assets.daemon_ctl up

down:
	$(BIN)/python -m cryptotracker_assets.daemon_ctl down

# vectorbt is a bench-only reference (its own venv: it pins other numpy/pandas versions than the project).
$(VENV)-bench/bin/.installed: benchmarks/requirements-vectorbt.txt
	$(PYTHON) -m venv $(VENV)-bench
	$(VENV)-bench/bin/python -m pip install --quiet --upgrade pip
	$(VENV)-bench/bin/python -m pip install --quiet -r benchmarks/requirements-vectorbt.txt
	touch $@

bench: $(BIN)/.installed $(VENV)-bench/bin/.installed
	$(BIN)/python -m benchmarks

config-check: $(BIN)/.installed
	$(BIN)/cryptotracker config check

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) .pytest_cache
