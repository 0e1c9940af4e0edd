# Each target creates .venv on demand.  The stamp files record what was installed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: demo test test-fast bench lint clean chromium

$(VENV)/.core: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install -q -e '.[dev,deep,distributed]'
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/ensemble-bt backtest --config configs/backtest.yaml

# Benchmarks also time vectorbt; the tests never import it.
$(VENV)/.bench: $(VENV)/.dev
	$(PIP) install -q -e '.[dev,deep,distributed,bench]'
	touch $@

# The page tests drive Debian's headless Chromium (tests/browser.py).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: $(VENV)/.dev chromium
	$(PY) -m pytest -q

# The loop while working: slow pipelines, TensorFlow, grids and kill tests left out.
test-fast: $(VENV)/.dev
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.bench
	$(PY) -m benchmarks.run

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results bench-results .pytest_cache .ruff_cache
