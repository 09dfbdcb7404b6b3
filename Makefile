# scale-bridge: every target does its own set-up on a fresh Debian / Python 3.11 machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck bench install clean man deb

$(STAMP): pyproject.toml
	@echo "installing into $(VENV) (about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the simulator is an extra (aiohttp, jsonschema-rs): .[dev] has it; a box's venv does not
demo: $(STAMP)
	$(PY) -m pip install --quiet -e '.[simulator]'
	$(VENV)/bin/scale-bridge demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

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

# The Debian package (Debian 12 / Raspberry Pi OS, the architecture of this machine): dpkg-buildpackage +
# debhelper on a copy of the checkout (tracked and new files), wheels from WHEELHOUSE (offline) or
# fetched into build/deb/wheels with pip first. DEB_VERSION=0.1.0-2 stamps a rebuilt package's version.
# Result: dist/scale-bridge_<version>_<arch>.deb (docs/install.md).
DEB_VERSION ?=
WHEELHOUSE ?=
DEB_BUILD := build/deb
deb: $(STAMP)
	rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/src dist
	git ls-files -z --cached --others --exclude-standard | \
		xargs -0 sh -c 'for f; do [ ! -f "$$f" ] || cp --parents -p "$$f" $(DEB_BUILD)/src/; done' sh
	if [ -n "$(DEB_VERSION)" ]; then \
		{ printf 'scale-bridge (%s) bookworm; urgency=medium\n\n  * Rebuilt from the checkout.\n\n -- scale-bridge maintainers <scale-bridge@localhost>  %s\n\n' \
			"$(DEB_VERSION)" "$$(date -R)"; cat debian/changelog; } > $(DEB_BUILD)/src/debian/changelog; fi
	mkdir -p $(DEB_BUILD)/wheels
	if [ -n "$(WHEELHOUSE)" ]; then cp -p $(WHEELHOUSE)/*.whl $(DEB_BUILD)/wheels/; \
	else $(PY) -m pip wheel --quiet --wheel-dir $(DEB_BUILD)/wheels $(DEB_BUILD)/src; fi
	rm -f $(DEB_BUILD)/wheels/scale_bridge-*.whl
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir $(DEB_BUILD)/wheels $(DEB_BUILD)/src
	cd $(DEB_BUILD)/src && env -u MAKEFLAGS -u MAKELEVEL SB_WHEELS=$$(realpath ../wheels) dpkg-buildpackage -b -us -uc --no-sign
	mv $(DEB_BUILD)/scale-bridge_*.deb dist/
	ls -l dist/*.deb

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# The manual page, generated from the parser (docs: scale-bridge man --help).
man: $(STAMP)
	mkdir -p build/man
	$(VENV)/bin/scale-bridge man > build/man/scale-bridge.1
