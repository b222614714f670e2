#!/usr/bin/env bash
# Runs Poetry 2 (with poetry-plugin-export), installing it first into .tools/poetry when
# this machine has none. Usage: scripts/poetry.sh <poetry arguments...>
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.tools/poetry"
python=${PYTHON:-python3}
if [ ! -x "$tools/bin/poetry" ]; then
    echo "scripts/poetry.sh: installing Poetry 2 and poetry-plugin-export into $tools" >&2
    "$python" -m venv "$tools"
    if ! out=$("$tools/bin/pip" install --disable-pip-version-check \
            'poetry>=2.0,<3' 'poetry-plugin-export>=1.8' 2>&1); then
        printf '%s\n' "$out" | grep -v '^WARNING: Location' >&2
        rm -rf "$tools"
        exit 1
    fi
    "$tools/bin/poetry" --version >&2
fi
exec "$tools/bin/poetry" "$@"
