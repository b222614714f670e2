#!/usr/bin/env bash
# Installs the locked dependencies (poetry.lock, with their hashes) and the project itself
# into a virtual environment (default .venv). Poetry exports the lock; pip installs it, so
# this works where a package index serves only pip's simple API.
# Usage: scripts/install.sh [--prod] [VENV_DIR]
#   default: the development install (dev group, every extra, slac editable): make install-local
#            (the hlc extra, iso15118, needs Java at run time: .ci/run installs it)
#   --prod:  what runs in production and in the Docker image: the main dependencies, the mqtt
#            extra, and slac itself as a regular (non-editable) package
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mode=dev
if [ "${1:-}" = "--prod" ]; then
    mode=prod
    shift
fi
venv=${1:-$here/.venv}
python=${PYTHON:-python3}
cd "$here"
"$here/scripts/poetry.sh" check --lock
req=$(mktemp)
trap 'rm -f "$req"' EXIT
if [ "$mode" = prod ]; then
    "$here/scripts/poetry.sh" export --format requirements.txt --only main --extras mqtt \
        --output "$req"
else
    "$here/scripts/poetry.sh" export --format requirements.txt --with dev --all-extras \
        --output "$req"
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
quiet() {  # run a command; show its output (less pip's index-location noise) only if it fails
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" | grep -v '^WARNING: Location' >&2
        echo "scripts/install.sh: failed: $*" >&2
        return 1
    fi
}
quiet "$venv/bin/pip" install --disable-pip-version-check --require-hashes -r "$req"
if [ "$mode" = prod ]; then
    quiet "$venv/bin/pip" install --disable-pip-version-check --no-deps "$here"
    "$venv/bin/python" -c 'import slac, environs, dotenv, aiomqtt; print("installed slac", slac.__version__, "(production) into", __import__("sys").prefix)'
else
    quiet "$venv/bin/pip" install --disable-pip-version-check --no-deps -e .
    "$venv/bin/python" -c 'import slac, environs, dotenv, scapy, pytest; print("installed slac", slac.__version__, "into", __import__("sys").prefix)'
fi
