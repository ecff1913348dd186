#!/usr/bin/env bash
# Make this machine able to run the gateway, its tests and the demo: mosquitto, influxd and
# victoria-metrics as binaries (the tests start private instances; no system service is used),
# then .venv with the package and its dev extras. Idempotent and quick when nothing is missing,
# so `make` runs it before every target instead of people remembering to.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
STAMP="$VENV/.installed-stamp"

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Debian puts mosquitto in /usr/sbin, which is not on every user's PATH.
have_binary() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found: install these packages with your package manager: $*"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install as root: $*"
        sudo=(sudo)
    fi
    say "installing $*"
    "${sudo[@]}" apt-get update
    # The influxdb and victoria-metrics packages may start system services on :8086 and :8428;
    # harmless, as tests never use them.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    die "Python >= 3.11 is required (found: $(python3 --version 2>&1 || echo 'no python3')); \
install it or point PYTHON=/path/to/python3.11 at one"
}

packages=()
have_binary mosquitto || packages+=(mosquitto)
have_binary influxd || packages+=(influxdb)
# A second engine taking line protocol (tests/test_victoria*.py start private instances).
have_binary victoria-metrics || packages+=(victoria-metrics)
# Headless browser: tests/test_report.py screenshots `gateway report`'s HTML.
have_binary chromium || packages+=(chromium)
if [ ! -x "$VENV/bin/python" ]; then
    python=$(find_python)
    # Debian's python3 lacks ensurepip, so `-m venv` fails until python3-venv is installed.
    "$python" -c 'import ensurepip' 2>/dev/null || packages+=(python3-venv)
fi
if [ ${#packages[@]} -gt 0 ]; then
    apt_install "${packages[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $("$python" --version)"
    "$python" -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$VENV has Python < 3.11: run \`make distclean\` and try again"

if [ ! "$STAMP" -nt pyproject.toml ]; then
    say "installing the package with its dev extras into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    touch "$STAMP"
fi
