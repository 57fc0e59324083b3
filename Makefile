# weldguard: `make demo` runs the platform on embedded defaults, `make test` runs the tests.
# Both create .venv and install the Python and front-end dependencies first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The embedded MQTT broker's port; 1884 so that a system Mosquitto on 1883 does
# not stop the demo.
MQTT_PORT ?= 1884

.PHONY: demo test venv lint typecheck bench browser-deps clean

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

venv: $(PY_STAMP) $(NODE_STAMP)

# Debian's Chromium drives the browser tests; install it when we may (root).
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk) >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium chromium-driver fonts-noto-cjk"; fi; \
	fi

demo: venv
	$(BIN)/weldguard db upgrade
	$(BIN)/weldguard seed demo
	WELDGUARD_MQTT_LISTEN_PORT=$(MQTT_PORT) $(BIN)/weldguard serve --host $(HOST) --port $(PORT) \
	  --fleet "$${WELDGUARD_DATA_DIR:-var}/demo-devices.csv"

test: venv browser-deps
	$(BIN)/pytest -n 2

lint: venv
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/import_enterprises.py
	$(BIN)/python bench/list_pages.py

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache
