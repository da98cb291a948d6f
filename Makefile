# meterledger: `make demo` and `make test` do all their own set-up on a fresh Debian machine:
# a virtualenv in .venv, the package and its extras, Mosquitto (apt-get, when root) and
# the npm package of the MicroPython interpreter used by the firmware tests.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test soak bench lint firmware-types mosquitto browser flashtools postgres venv clean

venv: $(VENV)/.deps

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
	      && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	  else echo "cannot create a virtualenv: install python3-venv" >&2; exit 1; fi; }

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[test]'
	@touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

# Mosquitto (and openssl) from Debian when missing and we are root; the tests need a real broker.
mosquitto:
	@if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing mosquitto with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients openssl; \
	else echo "mosquitto is missing and we are not root: the demo falls back to amqtt"; fi
	@# The gateway's TLS test makes its certificates with the openssl command line.
	@if ! command -v openssl >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl; fi

# Debian's Chromium and a Japanese font for the browser tests of the node's screens
# (Playwright drives /usr/bin/chromium; it never downloads a browser of its own).
browser:
	@if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi ipagothic; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium and fonts-ipafont-gothic with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-ipafont-gothic; \
	else echo "the browser tests need chromium and fonts-ipafont-gothic: apt-get install them" >&2; exit 1; fi

# mtools (mlg-flash writes a gateway image's boot partition with it, never mounting it),
# dosfstools (the tests make FAT images with mkfs.vfat) and systemd-analyze (the tests
# check hw/'s systemd units with it).
flashtools:
	@if command -v mcopy >/dev/null && { command -v mkfs.vfat >/dev/null || [ -x /usr/sbin/mkfs.vfat ]; } \
	  && command -v systemd-analyze >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing mtools, dosfstools and systemd with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mtools dosfstools systemd; \
	else echo "the tests need mtools, dosfstools and systemd-analyze: apt-get install mtools dosfstools systemd" >&2; exit 1; fi

# Debian's PostgreSQL: the node's tests run their storage on it too, each worker starting a
# server of its own in a temporary folder (Unix socket only, no TCP).
postgres:
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing postgresql with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else echo "the tests need PostgreSQL: apt-get install postgresql" >&2; exit 1; fi

# The demo runs without root too: with no Mosquitto it starts the embedded amqtt broker.
# `make demo DEMO_ARGS=--keep` keeps its network and screens running until Ctrl-C.
demo: venv mosquitto
	@if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then $(PIP) install -e '.[broker]'; fi
	$(BIN)/mlg-demo $(DEMO_ARGS)

test: venv mosquitto browser flashtools postgres node_modules/.installed
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "the tests need Mosquitto: apt-get install mosquitto" >&2; exit 1; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory firmware-types
	$(BIN)/pytest -n 2 --dist loadfile

# The fault suite at full size (tests/faults, the scenarios marked soak): each prints its
# figures (also appended to tests/artifacts/fault-figures.txt). About 25 minutes by its
# sizes; no scenario may take more than its own bound (pytest-timeout).
soak: venv mosquitto node_modules/.installed
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "the fault suite needs Mosquitto: apt-get install mosquitto" >&2; exit 1; }
	$(BIN)/pytest tests/faults -m soak -rP

# Benchmarks print their figures with the limit each is compared with, and write
# bench-results.json. They need the same set-up as the tests.
bench: venv mosquitto postgres node_modules/.installed
	$(BIN)/python -m tests.bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory firmware-types

# The board code against the MicroPython rp2 stubs, used as pyright's typeshed (mypy
# cannot read them). pyright's PyPI package fetches its Node part from npm on first use.
firmware-types: venv
	$(BIN)/pyright -p firmware/pyrightconfig.json --pythonpath $(BIN)/python \
	  -t "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache *.egg-info
