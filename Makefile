# scale-bridge: every target does its own set-up on a fresh Debian / Python 3.11 machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck bench install clean man

$(STAMP): pyproject.toml
	@echo "installing into $(VENV) (about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
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

# The manual page, generated from the parser (docs: scale-bridge man --help).
man: $(STAMP)
	mkdir -p build/man
	$(VENV)/bin/scale-bridge man > build/man/scale-bridge.1
