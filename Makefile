# scale-bridge: every target does its own set-up on a fresh Debian / Python 3.11 machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the simulator is an extra (aiohttp, jsonschema-rs): .[dev] has it; a box's venv does not
demo: $(STAMP)
	$(PY) -m pip install --quiet -e '.[simulator]'
	$(VENV)/bin/scale-bridge demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check bridge drivers tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

# Install as a systemd service (root): venv under $(PREFIX), unit, sysusers user, examples.
# `make install INSTALL_FLAGS=--enable` also starts it; see docs/install.md.
PREFIX ?= /opt/scale-bridge
INSTALL_FLAGS ?=
install:
	systemd/install.sh --prefix $(PREFIX) $(INSTALL_FLAGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
