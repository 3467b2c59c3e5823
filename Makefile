# fnnet: `make run` and `make test` are all a user types on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-ref reproduce bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m fnnet.cli run mlp_digits

# Tests whose reference library (PyTorch) is missing skip, and the run ends with one
# line saying how many. FNNET_REQUIRE_REFERENCES=1 (as in CI) makes them fail instead.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

# The reference extra installed, and no reference test allowed to skip.
test-ref: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,ref,parallel]'
	FNNET_REQUIRE_REFERENCES=1 $(PY) -m pytest -q -n 2 tests

reproduce: $(STAMP)
	$(PY) -m pytest -q -n 2 -m slow tests

bench: $(STAMP)
	$(PY) -m fnnet.cli bench

# The documentation site from docs/ into site/, strict (a broken link or API reference
# fails), then every example of the guides runs (tests/test_docs.py).
docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict
	$(PY) -m pytest -q -p no:xdist tests/test_docs.py -k 'not site_builds'

clean:
	rm -rf $(VENV) runs .pytest_cache
