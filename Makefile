# source-klaviyo-segments: `make test` is what CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-tests

.PHONY: test lint unit integration clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tests]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check source_klaviyo_segments unit_tests integration_tests
	$(BIN)/mypy source_klaviyo_segments

unit: $(STAMP)
	$(BIN)/python -m pytest -q unit_tests

integration: $(STAMP)
	$(BIN)/python -m pytest -q integration_tests

test: lint $(STAMP)
	$(BIN)/python -m pytest -q source_klaviyo_segments unit_tests integration_tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
