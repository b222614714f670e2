#!/usr/bin/env bash
# Builds the Docker base image for machines that cannot pull `python:3.11-slim-bookworm`
# (no Docker Hub): Debian bookworm from the host's own Debian mirror (debootstrap, minbase)
# with python3, python3-venv and ca-certificates, the bookworm-updates and bookworm-security
# updates where the host's apt sources name them, and the host's extra CA certificates
# (/usr/local/share/ca-certificates/), so that pip inside the build trusts what the host's
# pip trusts. Loaded with `docker import` as slac-base:bookworm; then
#   make build BASE_IMAGE=slac-base:bookworm
#
# Nothing about the machine is written into the project: the mirror is read from the host's
# apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and deb822 *.sources)
# each time, and the certificates are copied from the host each time. The image keeps no
# apt sources (add your own to extend it), no resolv.conf and no apt lists.
#
# Idempotent: when the image exists and was made from the same inputs (this script, the
# suite, the packages, the certificates, the mirror), it does nothing. Downloaded .deb
# files are kept in $SLAC_BASE_CACHE (default /var/cache/slac-docker-base, checked against
# the archive's signed checksums by debootstrap and apt) for the next build.
#
# Usage: scripts/docker-base.sh [--force] [IMAGE]   (root; default IMAGE slac-base:bookworm)
#        scripts/docker-base.sh --sources           the Debian sources it would use, and exit
# Environment: SLAC_DEBIAN_MIRROR (a mirror URL instead of the host's), SLAC_BASE_CACHE,
#              SLAC_APT_DIR (the apt configuration to read, default /etc/apt),
#              DOCKER_HOST (the engine, e.g. from `scripts/dockerd.sh start`).
set -euo pipefail
force=0
only_sources=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --sources) only_sources=1 ;;
        -*)
            echo "usage: $0 [--force] [IMAGE] | --sources" >&2
            exit 2
            ;;
        *) break ;;
    esac
    shift
done
image=${1:-slac-base:bookworm}
apt_dir=${SLAC_APT_DIR:-/etc/apt}
suite=bookworm
packages=python3,python3-venv,ca-certificates
cache=${SLAC_BASE_CACHE:-/var/cache/slac-docker-base}
cadir=/usr/local/share/ca-certificates

die() {
    echo "scripts/docker-base.sh: $*" >&2
    exit 1
}
say() {
    echo "scripts/docker-base.sh: ${started:+[$(($(date +%s) - started)) s] }$*" >&2
}
started=

# The host's Debian sources for the suite: "URI SUITE" lines, the main archive first. Reads
# one-line .list files and deb822 .sources files; skips disabled entries, deb-src, and
# repositories that are not Debian's (no component main for a bookworm suite).
host_sources() {
    python3 - "$suite" "$apt_dir" <<'EOF'
import glob, re, sys

suite, apt_dir = sys.argv[1], sys.argv[2]
wanted = {suite: 0, f"{suite}-updates": 1, f"{suite}-security": 2, f"{suite}/updates": 2}
found = []

def add(types, uris, suites, components, enabled=True):
    if not enabled or "deb" not in types or "main" not in components:
        return
    for uri in uris:
        for s in suites:
            if s in wanted and not uri.startswith(("cdrom:", "file:")):
                found.append((wanted[s], uri.rstrip("/"), s))

files = [f"{apt_dir}/sources.list"] + sorted(glob.glob(f"{apt_dir}/sources.list.d/*"))
for path in files:
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            fields, key = {}, None
            for line in stanza.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, value = line.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = value.strip()
            add(
                fields.get("types", "").split(),
                fields.get("uris", "").split(),
                fields.get("suites", "").split(),
                fields.get("components", "").split(),
                fields.get("enabled", "yes").lower() not in ("no", "false", "0"),
            )
    elif path.endswith(".list"):
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            line = re.sub(r"\[[^]]*\]", " ", line)  # [signed-by=... arch=...]
            parts = line.split()
            if len(parts) >= 4:
                add([parts[0]], [parts[1]], [parts[2]], parts[3:])
seen = set()
for _, uri, s in sorted(found, key=lambda f: f[0]):
    if (uri, s) not in seen:
        seen.add((uri, s))
        print(uri, s)
EOF
}

if [ -n "${SLAC_DEBIAN_MIRROR:-}" ]; then
    sources="${SLAC_DEBIAN_MIRROR%/} $suite"
else
    sources=$(host_sources)
fi
mirror=$(printf '%s\n' "$sources" | awk -v s="$suite" '$2 == s { print $1; exit }')
[ -n "$mirror" ] || die "the host's apt sources ($apt_dir) name no Debian mirror for $suite (deb URL $suite main); set SLAC_DEBIAN_MIRROR=URL"
if [ "$only_sources" -eq 1 ]; then
    printf '%s\n' "$sources"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: sudo $0"
command -v debootstrap >/dev/null || die "no debootstrap: apt-get install debootstrap"
command -v docker >/dev/null || die "no docker command: apt-get install docker.io"
if ! docker version >/dev/null 2>&1; then
    die "no Docker engine answers${DOCKER_HOST:+ at $DOCKER_HOST}: start one (scripts/dockerd.sh start, then export DOCKER_HOST=... as it prints)"
fi


certs=()
if [ -d "$cadir" ]; then
    while IFS= read -r -d '' cert; do
        certs+=("$cert")
    done < <(find "$cadir" -type f -name '*.crt' -print0 | sort -z)
fi

# what the image is made from: when none of it changed, the image is up to date
inputs=$({
    sha256sum "$0" | cut -d' ' -f1
    echo "$suite $packages"
    printf '%s\n' "$sources"
    for cert in "${certs[@]}"; do sha256sum "$cert"; done
} | sha256sum | cut -d' ' -f1)
have=$(docker image inspect -f '{{ index .Config.Labels "org.slac.base.inputs" }}' "$image" 2>/dev/null || true)
if [ "$force" -eq 0 ] && [ "$have" = "$inputs" ]; then
    say "$image is up to date"
    exit 0
fi

work=$(mktemp -d /var/tmp/slac-base.XXXXXX)
rootfs="$work/rootfs"
made_run_mount=0
cleanup() {
    rm -rf "$work"
    if [ "$made_run_mount" -eq 1 ]; then
        rmdir /run/mount 2>/dev/null || true
    fi
}
trap cleanup EXIT
mkdir -p "$cache"
[ -e /run/mount ] || made_run_mount=1  # debootstrap's mounts make it (util-linux's utab)
started=$(date +%s)
say "debootstrap $suite (minbase, $packages) from the host's Debian mirror"
if ! debootstrap --variant=minbase --include="$packages" --cache-dir="$cache" \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
fi

# no documentation, manual pages or translations, now and in later installs (as the
# official slim images)
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slac-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF

if [ "${#certs[@]}" -gt 0 ]; then
    say "trusting the host's extra CA certificates: ${certs[*]##*/}"
    for cert in "${certs[@]}"; do
        rel=${cert#"$cadir"/}
        mkdir -p "$rootfs/$cadir/$(dirname "$rel")"
        cp "$cert" "$rootfs/$cadir/$rel"
    done
    chroot "$rootfs" update-ca-certificates >/dev/null
fi

# updates: the host's bookworm-updates and bookworm-security sources, for this step only
updates=$(printf '%s\n' "$sources" | awk -v s="$suite" '$2 != s')
if [ -n "$updates" ]; then
    printf '%s\n' "$sources" | awk '{ print "deb " $1 " " $2 " main" }' >"$rootfs/etc/apt/sources.list"
    say "installing the updates of $(printf '%s\n' "$updates" | awk '{ printf "%s ", $2 }')"
    if ! chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o Dir::Cache::Archives=/var/cache/slac-debs -y -qq upgrade' \
        >"$work/upgrade.log" 2>&1; then
        tail -n 30 "$work/upgrade.log" >&2
        die "apt-get upgrade in the base failed (log above)"
    fi
fi

# what an image must not carry: the mirror, the build host's DNS and name, caches, logs
rm -f "$rootfs/etc/apt/sources.list" "$rootfs"/etc/apt/sources.list.d/* \
    "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/slac-debs \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/dev/*
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/usr/share/lintian/*
version=$(chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')

say "docker import $image (Python $version)"
tar --numeric-owner --xattrs -C "$rootfs" -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL org.slac.base.inputs=$inputs" \
        --change "LABEL org.slac.base.made-by=scripts/docker-base.sh" \
        --change 'CMD ["python3"]' \
        --message "debootstrap --variant=minbase $suite + $packages (scripts/docker-base.sh)" \
        - "$image" >/dev/null
size=$(docker image inspect -f '{{ .Size }}' "$image")
say "$image: Python $version, $((size / 1000000)) MB"

