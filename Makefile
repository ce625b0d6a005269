# mailroom: `make demo` runs the pipeline on local servers; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test unit lint manifests bench bench-pipeline bench-restart bench-ingest contract clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install-system-deps.sh
	sh scripts/install-system-deps.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -c "from deploy.local.kafka import fetch_jars; fetch_jars()"
	touch $@

demo: setup
	$(PY) -m deploy.local.demo

# The demo kept running, for a person to click through the web admin it prints; Ctrl-C stops everything.
demo-keep: setup
	$(PY) -m deploy.local.demo --keep

test: setup
	$(PY) -m pytest

unit: setup
	$(PY) -m pytest tests/unit

lint: setup manifests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

manifests: setup
	$(PY) -m deploy.validate

contract: setup
	$(PY) -m schemas.contract

bench: setup
	$(PY) bench/rules.py
	$(PY) bench/stages.py

bench-pipeline: setup
	$(PY) bench/pipeline.py

bench-restart: setup
	$(PY) bench/restart.py

bench-ingest: setup
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .cache .mailroom
