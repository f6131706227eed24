# source-klaviyo-segments
#   make demo   the quickstart: a local Klaviyo, PyAirbyte, DuckDB and a chart
#   make sync   the same sync with your own secrets/config.json
#   make test   the whole suite (what CI runs)
#   make bench  the benchmarks, written to BENCHMARKS.md
#   make fuzz   the property tests with fresh random examples (make test repeats fixed ones)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_STAMP := $(VENV)/.installed-tests
DEMO_STAMP := $(VENV)/.installed-demo

# PyAirbyte: no registry look-ups, no telemetry.
export AIRBYTE_OFFLINE_MODE := 1
export DO_NOT_TRACK := 1

.PHONY: demo sync test lint unit integration bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(TEST_STAMP): setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[tests]'
	touch $@ $(DEMO_STAMP)

$(DEMO_STAMP): setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/python -m demo.quickstart

sync: $(DEMO_STAMP)
	@test -f secrets/config.json || { echo "Put your config in secrets/config.json first (see README)."; exit 1; }
	$(BIN)/python -m demo.quickstart --config secrets/config.json

lint: $(TEST_STAMP)
	$(BIN)/ruff check source_klaviyo_segments unit_tests integration_tests demo bench
	$(BIN)/mypy source_klaviyo_segments

unit: $(TEST_STAMP)
	$(BIN)/python -m pytest -q source_klaviyo_segments unit_tests

integration: $(TEST_STAMP)
	$(BIN)/python -m pytest -q integration_tests

test: lint
	$(BIN)/python -m pytest -q source_klaviyo_segments unit_tests integration_tests

bench: $(TEST_STAMP)
	$(BIN)/python -m bench.run

fuzz: $(TEST_STAMP)
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -q -m hypothesis unit_tests integration_tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info .cache demo_output
