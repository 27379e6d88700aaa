# The README's commands. Each target creates what it needs: the virtual environment, the packages,
# Debian's chromium for browser tests, the project's Jupyter kernel, the demo data.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# --compile-bytecode: uv writes no .pyc files by default, and where PYTHONDONTWRITEBYTECODE is set (as on our CI
# machine) nothing else does: every process (each step's kernel, the service, each command) then compiles what it
# imports again, about 5 s each
UV := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
AS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
PORT ?= 8866

.PHONY: questions pipeline test lab reports docs bench data install install-dev install-team chromium redis postgresql team-up team-down clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(UV) -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mlops-nb)" >/dev/null
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(UV) -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## the package and its kernel in .venv

install-dev: $(VENV)/.installed-dev  ## plus the test tools

$(VENV)/.installed-team: $(VENV)/.installed
	$(UV) -e '.[team]'
	touch $@

install-team: $(VENV)/.installed-team  ## plus what the team's servers need (PostgreSQL driver, MLflow's basic auth, dask.distributed)

chromium:  ## Debian's chromium, for the browser tests
	@if [ ! -x /usr/bin/chromium ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; fi

redis:  ## Debian's redis-server, for the test that serves features from Redis
	@if ! command -v redis-server >/dev/null; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; fi

postgresql:  ## Debian's PostgreSQL server, for the team's servers (mlops-nb team up and the tests start their own clusters)
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; fi

data: install  ## the demo warehouse, data/warehouse.db
	$(BIN)/mlops-nb demo init

pipeline: data  ## run the whole lifecycle on the demo, then replay July-December through monitoring and retraining
	$(BIN)/mlops-nb run
	$(BIN)/mlops-nb demo replay --from 2013-07 --to 2013-12

questions: data  ## the demo's two other questions, each a project of its own: minutes late (regression) and the delay band (multiclass)
	$(BIN)/mlops-nb run --project conf/delay_minutes.yaml
	$(BIN)/mlops-nb run --project conf/delay_band.yaml

team-up: install-team postgresql redis data  ## start the team's servers on 127.0.0.1 (PostgreSQL, mlflow server, Redis, Dask), then run the demo through them
	$(BIN)/mlops-nb team up
	set -a && . .team/env && set +a && $(BIN)/mlops-nb run --project .team/project.yaml

team-down:  ## stop the team's servers (their data stays in .team/)
	$(BIN)/mlops-nb team down

test: install-dev chromium redis postgresql data  ## notebooks (nbdev-test) and pytest
	$(BIN)/python -m pytest

lab: install  ## JupyterLab on nbs/, on 127.0.0.1 with a token
	$(BIN)/jupyter lab --notebook-dir=nbs --ip=127.0.0.1 --no-browser $(AS_ROOT)

reports: install  ## serve the Voila reports on 127.0.0.1:$(PORT)
	$(BIN)/mlops-nb reports --port $(PORT)

docs: install  ## the documentation site (needs quarto; otherwise checks the notebooks' doc processing)
	@if command -v quarto >/dev/null; then $(BIN)/nbdev-docs; \
	else echo "quarto is not installed: running nbdev-proc-nbs only (the pages are processed, not rendered)"; \
	$(BIN)/nbdev-proc-nbs; fi

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(UV) -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.installed-bench data  ## benchmarks against the peers; results in bench/results/
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:  ## remove generated docs and caches (keeps runs, data and the tracking store)
	rm -rf _docs _proc .pytest_cache
