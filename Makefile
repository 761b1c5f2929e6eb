# The two commands of the README: `make bench` (the benchmark suite) and `make test` (our tests).
# Both create .venv and install everything first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llmbench-installed
# Extra pytest arguments, e.g. make bench ARGS="--llmbench-precision=bf16"
ARGS ?=

.PHONY: bench test install lint typecheck clean-venv

$(STAMP): pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

# Saves every run under .benchmarks/ and compares with the previous saved run when there is one.
bench: $(STAMP)
	@if ls .benchmarks/*/*.json >/dev/null 2>&1; then compare=--benchmark-compare; fi; \
	set -x; $(PY) -m pytest benchmarks --benchmark-autosave --benchmark-save-data $$compare $(ARGS)

# One pytest-xdist worker per core (at most 4: each imports torch), whole modules to a worker so that a
# module's shared models and sessions are made once (docs/testing.md, "Running the suite").
test: $(STAMP)
	$(PY) -m pytest tests -n auto --maxprocesses=4 --dist loadscope $(ARGS)

# ruff, and the layer contracts of docs/design.md (import-linter, [tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts fixtures conftest.py
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean-venv:
	rm -rf $(VENV)

# What the pull-request job runs, on this machine: the matrix, saved under .benchmarks/, compared with
# the latest saved run (the gate), the verdict written to results/verdict.md and the HTML report to
# llmbench-report/. The first run has nothing to compare with: it only saves.
.PHONY: bench-compare
bench-compare: $(STAMP)
	@mkdir -p results; \
	if ls .benchmarks/*/*.json >/dev/null 2>&1; then compare=--benchmark-compare; \
	else echo "bench-compare: no saved run yet: this run becomes the baseline"; fi; \
	set -x; $(PY) -m pytest benchmarks --benchmark-autosave --benchmark-save-data $$compare \
	  --llmbench-verdict=results/verdict.md --llmbench-report=llmbench-report $(ARGS); \
	status=$$?; set +x; \
	echo "bench-compare: verdict in results/verdict.md, report in llmbench-report/ (exit status $$status)"; \
	exit $$status

# pytest-benchmark's own test suite with and without this plugin: the outcomes must match (docs/gate.md,
# "Plain pytest-benchmark benchmarks"). Downloads its source distribution (PyPI).
.PHONY: neighbour
neighbour: $(STAMP)
	PYTHON=$(PY) bash scripts/ci/pytest-benchmark-suite.sh
