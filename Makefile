# One entry point for people and CI. `make` creates .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CODE_VERSION ?= $(shell git rev-parse --short HEAD 2>/dev/null)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test unit lint format bench compile images push submit schedule stop clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install --quiet --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import kfp, kserve, minio, tensorflow, scipy" && touch $(STAMP)

## run: run the pipelines locally and leave the models served on http://127.0.0.1:8080 (gRPC: 127.0.0.1:8081)
run: $(STAMP)
	$(PY) -m pipelines run sum
	$(PY) -m pipelines run three-body --preset local

## test: every test: unit, then the real services, training, end-to-end runs and load
test: $(STAMP)
	$(PY) -m pytest -q

## unit: the tests that need no service, container or training (under a minute)
unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration"

## lint: ruff (lint and format check) and mypy on components/ and pipelines/
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## format: rewrite the sources in the project's format
format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## bench: the benchmarks under tests/benchmarks (not part of make test)
bench: $(STAMP)
	@for script in tests/benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

## compile: write pipelines/compiled/<name>.yaml
compile: $(STAMP)
	$(PY) -m pipelines compile

## images: build the component images with docker or podman (IMAGE_REGISTRY, IMAGE_TAG; GPU=1 adds trainer-gpu)
images:
	bash images/build.sh

## push: push what `make images` built to IMAGE_REGISTRY (or PUSH_TO=oci:DIR | dir:DIR | docker://HOST/NS)
push:
	bash images/push.sh

## submit: upload and run on Kubeflow: make submit PIPELINE=sum KFP_HOST=http://localhost:8080 [ARGS="--param k=v"]
PIPELINE ?= sum
KFP_HOST ?= http://localhost:8080
CRON ?= 0 0 3 * * *
submit: $(STAMP)
	$(PY) -m pipelines submit $(PIPELINE) --host $(KFP_HOST) $(ARGS)

## schedule: an enabled recurring run: make schedule PIPELINE=monitor CRON="0 0 * * * *"
schedule: $(STAMP)
	$(PY) -m pipelines schedule $(PIPELINE) --host $(KFP_HOST) --cron "$(CRON)" $(ARGS)

## stop: stop the local object store and model server
stop:
	@if [ -x $(PY) ]; then $(PY) -m pipelines stop; fi

clean: stop
	rm -rf .local
