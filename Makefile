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

# The first install downloads PyAirbyte, DuckDB, matplotlib and their dependencies (about 200
# packages, a few minutes) and shows pip's progress. The stamp files make later runs skip it until
# setup.py changes.
#
# PYTHONWARNINGS hides one message only: setuptools' "Editable installation" box, which it prints on
# every editable install of this flat layout (recent pip versions show build-backend warnings) and
# which asks nothing of the user. Every other warning still shows.
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install

$(BIN)/python:
	@version=$$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null) || { \
	  echo "$(PYTHON) was not found: install Python 3.10, 3.11 or 3.12, then run e.g. make $(or $(MAKECMDGOALS),demo) PYTHON=python3.11"; exit 1; }; \
	case "$$version" in 3.10.*|3.11.*|3.12.*) ;; *) \
	  echo "$(PYTHON) is Python $$version, but PyAirbyte needs 3.10, 3.11 or 3.12: run e.g. make $(or $(MAKECMDGOALS),demo) PYTHON=python3.11"; exit 1;; esac
	@echo "Creating the virtual environment $(VENV) with $(PYTHON) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(TEST_STAMP): setup.py | $(BIN)/python
	@echo "Installing source-klaviyo-segments (editable) with its test tools into $(VENV):"
	@echo "  pytest, hypothesis, ruff, mypy, PyAirbyte, DuckDB, matplotlib, klaviyo-api and their dependencies."
	@echo "  The first run downloads about 200 packages and takes a few minutes; later runs skip this step."
	$(PIP_INSTALL) -e '.[tests]'
	touch $@ $(DEMO_STAMP)
	@echo "Installed. Next runs skip the install (it reruns when setup.py changes)."

$(DEMO_STAMP): setup.py | $(BIN)/python
	@echo "Installing source-klaviyo-segments (editable) with the demo extras into $(VENV):"
	@echo "  PyAirbyte, DuckDB, matplotlib, klaviyo-api (for the local Klaviyo emulator) and their dependencies."
	@echo "  The first run downloads about 200 packages and takes a few minutes; later runs skip this step."
	$(PIP_INSTALL) -e '.[demo]'
	touch $@
	@echo "Installed. Next runs skip the install (it reruns when setup.py changes)."

demo: $(DEMO_STAMP)
	$(BIN)/python -m demo.quickstart

sync: $(DEMO_STAMP)
	@test -f secrets/config.json || { echo "Put your config in secrets/config.json first (see README)."; exit 1; }
	$(BIN)/python -m demo.quickstart --config secrets/config.json

lint: $(TEST_STAMP)
	$(BIN)/ruff check source_klaviyo_segments klaviyo_emulator unit_tests integration_tests demo bench testkit
	$(BIN)/mypy source_klaviyo_segments

# Tests sit beside what they test: the connector's in unit_tests/ and integration_tests/ (and its
# doctests), the emulator's in klaviyo_emulator/tests/, the bench's in bench/tests/. `unit` is what
# runs without a server; `integration` what talks HTTP to an emulator on 127.0.0.1.
UNIT_TESTS := source_klaviyo_segments unit_tests bench/tests
INTEGRATION_TESTS := integration_tests klaviyo_emulator/tests

unit: $(TEST_STAMP)
	$(BIN)/python -m pytest -q $(UNIT_TESTS)

integration: $(TEST_STAMP)
	$(BIN)/python -m pytest -q $(INTEGRATION_TESTS)

# Spread over one worker more than the cores (at most 4): while one waits on a retry's backoff or
# a connector process, another has the core. A test file per worker (module fixtures such as the
# standard suites' emulators start once). No test's verdict depends on how busy the machine is.
TEST_WORKERS ?= $(shell cores=$$(nproc 2>/dev/null || echo 1); echo $$(( cores < 3 ? cores + 1 : 4 )))
test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(UNIT_TESTS) $(INTEGRATION_TESTS)

bench: $(TEST_STAMP)
	$(BIN)/python -m bench.run

fuzz: $(TEST_STAMP)
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -q -m hypothesis $(UNIT_TESTS) $(INTEGRATION_TESTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info .cache demo_output
