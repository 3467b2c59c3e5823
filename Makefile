# fnnet: `make run` and `make test` are all a user types on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test reproduce bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m fnnet.cli run mlp_digits

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

reproduce: $(STAMP)
	$(PY) -m pytest -q -n 2 -m slow tests

bench: $(STAMP)
	$(PY) -m fnnet.cli bench

clean:
	rm -rf $(VENV) runs .pytest_cache
