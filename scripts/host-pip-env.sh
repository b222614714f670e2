#!/usr/bin/env bash
# Runs a command (a Docker build) with the host pip's package-index settings in its
# environment, read at run time from the host's pip (`python3 -m pip config list`: its
# configuration files and PIP_* variables), so that pip inside the build asks the same
# index as pip on this host, and no index address is written into any file:
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, PIP_TRUSTED_HOST
# The Makefile hands them to `docker build` / compose as build arguments of the build stage
# only (the runtime image does not carry them); a setting the host's pip lacks is empty. Locations that are paths on this host
# (file://, /opt/...) are left out: a build cannot read them.
# Usage: scripts/host-pip-env.sh COMMAND [ARG...]   (no command: print the settings)
# PYTHON: the interpreter whose pip counts (default python3).
set -euo pipefail
python=${PYTHON:-python3}
settings=$("$python" - <<'EOF'
import ast, shlex, subprocess, sys

try:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True, text=True, check=True,
    ).stdout
except (OSError, subprocess.CalledProcessError):
    sys.exit(0)  # no pip here: pip in the build uses its defaults
found = {}
for line in out.splitlines():
    key, sep, raw = line.partition("=")
    if not sep or "." not in key:
        continue
    section, name = key.rsplit(".", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw.strip("'\"")
    # what `pip install` uses: PIP_* variables, then [install], then [global]
    rank = {":env:": 0, "install": 1, "global": 2}.get(section)
    if rank is not None and (name not in found or rank < found[name][0]):
        found[name] = (rank, str(value))

def remote(location: str) -> bool:
    return location.startswith(("http://", "https://"))

for name, variable in (
    ("index-url", "PIP_INDEX_URL"),
    ("extra-index-url", "PIP_EXTRA_INDEX_URL"),
    ("find-links", "PIP_FIND_LINKS"),
    ("trusted-host", "PIP_TRUSTED_HOST"),
):
    if name not in found:
        continue
    values = found[name][1].split()
    if name != "trusted-host":
        for location in values:
            if not remote(location):
                print(f"host pip: {name} {location} left out (a path on this host)", file=sys.stderr)
        values = [v for v in values if remote(v)]
    if values:
        print(f"{variable}={shlex.quote(' '.join(values))}")
EOF
)
if [ "$#" -eq 0 ]; then
    [ -z "$settings" ] || printf '%s\n' "$settings"
    exit 0
fi
# only what the host's pip sets; the others empty, which pip takes as unset (every build
# tool then passes the same four arguments, so their builds share the layer cache)
export PIP_INDEX_URL="" PIP_EXTRA_INDEX_URL="" PIP_FIND_LINKS="" PIP_TRUSTED_HOST=""
while IFS= read -r assignment; do
    [ -n "$assignment" ] || continue
    eval "export $assignment"
done <<<"$settings"
exec "$@"
