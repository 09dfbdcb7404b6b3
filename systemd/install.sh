#!/bin/sh
# Install scale-bridge as a systemd service (Debian / Raspberry Pi OS). Run as root from a checkout:
#
#   sudo systemd/install.sh                      # venv + unit + user + examples; does not start anything
#   sudo systemd/install.sh --enable             # ... and systemctl enable --now scale-bridge
#   sudo systemd/install.sh --wheelhouse DIR     # offline: install from wheels in DIR (repeatable)
#   sudo systemd/install.sh --with cards,metrics # optional parts: evdev card readers, Prometheus metrics
#                                                # (default: what /etc/scale-bridge/config.toml needs)
#
# Layout (docs/install.md):
#   /opt/scale-bridge/venv/                      the program (--prefix changes /opt/scale-bridge)
#   /opt/scale-bridge/share/doc/scale-bridge/    install.md, config.example.toml, udev example
#   /usr/local/share/man/man1/scale-bridge.1     the manual page (man scale-bridge), made by the program
#   /etc/systemd/system/scale-bridge.service     the unit (local changes: systemctl edit scale-bridge)
#   /etc/sysusers.d/scale-bridge.conf            the static system user, applied with systemd-sysusers
#   /etc/scale-bridge/config.toml                configuration (root:scale-bridge 0640; never overwritten)
#   /etc/credstore/                              the API key file scale-bridge.api_key goes here (0700)
#   /etc/udev/rules.d/70-scale-bridge.rules      commented-out udev example (never overwritten)
#   /var/lib/scale-bridge/                       state (StateDirectory=, created by systemd)
#
# Re-running it upgrades the program and the unit and keeps config, key, rules and state.
set -eu

PREFIX=/opt/scale-bridge
PYTHON=python3
ENABLE=0
FIND_LINKS=""
WITH=""
WITH_GIVEN=0
SRC=$(cd "$(dirname "$0")/.." && pwd)
UNIT=scale-bridge.service

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --prefix DIR  --python PYTHON  --wheelhouse DIR  --with EXTRAS  --enable  --source DIR"
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) PREFIX=${2:?}; shift 2 ;;
    --python) PYTHON=${2:?}; shift 2 ;;
    --wheelhouse) FIND_LINKS="$FIND_LINKS --find-links ${2:?}"; shift 2 ;;
    --source) SRC=${2:?}; shift 2 ;;
    --with) WITH=${2?}; WITH_GIVEN=1; shift 2 ;;
    --enable) ENABLE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path" ;; esac
case "$WITH" in *[!a-z,]*) die "--with takes a comma-separated list of: cards, metrics" ;; esac
for extra in $(echo "$WITH" | tr ',' ' '); do
    case "$extra" in cards | metrics) ;; *) die "--with: unknown extra '$extra' (cards, metrics)" ;; esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
[ -f "$SRC/systemd/$UNIT" ] || die "no $SRC/systemd/$UNIT: run it from a scale-bridge checkout (or --source DIR)"
command -v systemd-sysusers >/dev/null || die "systemd-sysusers not found: this needs a systemd system"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON is missing or older than 3.11 (apt-get install python3 python3-venv)"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || die "python venv support missing: apt-get install python3-venv"

step() { echo "==> $*"; }

# 1. The program, in its own virtualenv.
VENV="$PREFIX/venv"
if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV"
    install -d -m 0755 "$PREFIX"
    "$PYTHON" -m venv "$VENV"
fi
if [ -n "$FIND_LINKS" ]; then
    step "installing scale-bridge from wheels (offline)"
    # shellcheck disable=SC2086  # FIND_LINKS is a list of options
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-index $FIND_LINKS --upgrade scale-bridge
    # the same version number may still be a newer build: replace the program itself (not its dependencies)
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-index $FIND_LINKS --force-reinstall --no-deps \
        scale-bridge
else
    # Build from a private copy: the checkout may be read-only, and pip builds in the source tree.
    step "installing scale-bridge from $SRC"
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    (cd "$SRC" && tar --exclude=./.venv --exclude=./.git --exclude='*.egg-info' --exclude=./build -cf - .) \
        | tar -C "$BUILD" -xf -
    "$VENV/bin/pip" wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$BUILD/dist" "$BUILD"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade "$BUILD"/dist/scale_bridge-*.whl
    # the same version number may still be a newer build: replace the program itself (not its dependencies)
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
        "$BUILD"/dist/scale_bridge-*.whl
fi
"$VENV/bin/scale-bridge" --help >/dev/null || die "$VENV/bin/scale-bridge does not run"

# 1b. Optional parts (extras) into the same venv: asked for, or what the existing config needs.
if [ "$WITH_GIVEN" -eq 0 ] && [ -f /etc/scale-bridge/config.toml ]; then
    WITH=$("$VENV/bin/python" -m bridge.envcheck --extras /etc/scale-bridge/config.toml || true)
fi
if [ -n "$WITH" ]; then
    step "installing the optional parts: $WITH"
    if [ -n "$FIND_LINKS" ]; then
        # shellcheck disable=SC2086
        "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-index $FIND_LINKS "scale-bridge[$WITH]"
    else
        # the extras of the wheel just built (never "scale-bridge" from an index: it is not published there)
        for whl in "$BUILD"/dist/scale_bridge-*.whl; do
            "$VENV/bin/pip" install --quiet --disable-pip-version-check "$whl[$WITH]"
        done
    fi
fi

# 2. The system user (static; see the sysusers file for why not DynamicUser=).
step "creating the system user scale-bridge (systemd-sysusers)"
install -D -m 0644 "$SRC/systemd/scale-bridge.sysusers" /etc/sysusers.d/scale-bridge.conf
systemd-sysusers /etc/sysusers.d/scale-bridge.conf

# 3. The unit; the program path follows --prefix.
step "installing /etc/systemd/system/$UNIT"
sed "s|/opt/scale-bridge|$PREFIX|g" "$SRC/systemd/$UNIT" >"/etc/systemd/system/$UNIT.tmp"
chmod 0644 "/etc/systemd/system/$UNIT.tmp"
mv "/etc/systemd/system/$UNIT.tmp" "/etc/systemd/system/$UNIT"

# 4. Documentation and examples beside the program.
DOC="$PREFIX/share/doc/scale-bridge"
install -d -m 0755 "$DOC"
for f in docs/install.md config.example.toml systemd/70-scale-bridge.rules; do
    [ -f "$SRC/$f" ] && install -m 0644 "$SRC/$f" "$DOC/"
done
# the manual page (the units' Documentation=man:scale-bridge(1)), generated by the program just installed
# from its own parser; /usr/local/share/man is in man's default search path whatever --prefix is
MAN1=/usr/local/share/man/man1
install -d -m 0755 "$MAN1"
"$VENV/bin/scale-bridge" man >"$MAN1/scale-bridge.1.tmp" || die "$VENV/bin/scale-bridge man failed"
chmod 0644 "$MAN1/scale-bridge.1.tmp"
mv "$MAN1/scale-bridge.1.tmp" "$MAN1/scale-bridge.1"

# 5. Configuration (kept if present), credential store, udev example (kept if present).
install -d -m 0755 /etc/scale-bridge
if [ -f "$SRC/config.example.toml" ]; then
    install -m 0644 "$SRC/config.example.toml" /etc/scale-bridge/config.example.toml
    if [ ! -e /etc/scale-bridge/config.toml ]; then
        step "writing /etc/scale-bridge/config.toml from config.example.toml: edit it"
        install -m 0640 -o root -g scale-bridge "$SRC/config.example.toml" /etc/scale-bridge/config.toml
    fi
else
    echo "install.sh: warning: no config.example.toml in $SRC; write /etc/scale-bridge/config.toml yourself" >&2
fi
install -d -m 0700 /etc/credstore
if [ -d /etc/udev/rules.d ] || command -v udevadm >/dev/null; then
    if [ ! -e /etc/udev/rules.d/70-scale-bridge.rules ]; then
        install -D -m 0644 "$SRC/systemd/70-scale-bridge.rules" /etc/udev/rules.d/70-scale-bridge.rules
    fi
fi

# 6. Tell systemd; start only when asked.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$ENABLE" -eq 1 ]; then
        step "systemctl enable --now $UNIT"
        systemctl enable --now "$UNIT"
    fi
elif [ "$ENABLE" -eq 1 ]; then
    step "systemd is not running here: enabling only"
    systemctl enable "$UNIT"
fi

if [ ! -e /etc/credstore/scale-bridge.api_key ]; then
    cat <<EOF

Next steps (docs/install.md, also in $DOC):
  1. edit /etc/scale-bridge/config.toml
  2. the API key:  sudo sh -c 'umask 077; cat > /etc/credstore/scale-bridge.api_key'   (paste, Enter, Ctrl-D)
  3. check both as the service will see them:
     sudo systemd-run --pipe --wait --quiet -p User=scale-bridge -p LoadCredential=api_key:scale-bridge.api_key \\
          $VENV/bin/scale-bridge validate --config /etc/scale-bridge/config.toml
  4. sudo systemctl enable --now scale-bridge;  journalctl -u scale-bridge -f
EOF
fi
