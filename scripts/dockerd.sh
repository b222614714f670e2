#!/usr/bin/env bash
# Runs a Docker engine by hand (as root, no systemd), for the Docker tests, CI and machines
# where no engine runs as a service. It keeps to its own places and changes nothing else:
#   socket, pidfile, exec root, log:  $SLAC_DOCKERD_RUN  (default /run/slac-dockerd), removed at stop
#   images and build cache:           $SLAC_DOCKERD_ROOT (default /var/lib/slac-dockerd), kept
#                                     (the cache of the next start); `purge` removes it
# overlay2 storage; no bridge, no iptables rules, no IP forwarding or masquerading: the
# host's firewall and interfaces stay as they are, so containers run with --network host,
# none or container:..., and builds with --network=host (the Makefile and compose files do).
#
# Usage: scripts/dockerd.sh start|stop|status|env|purge
#   start   start the engine (or find it running), wait until it answers, print the
#           `export DOCKER_HOST=...` line that points the docker CLI at it
#   stop    stop it by its PID (containers are stopped first), remove the run directory
#   status  exit 0 when it answers, 1 otherwise
#   env     print the export line
#   purge   stop, then remove the data root (every image and the build cache)
set -euo pipefail
run=${SLAC_DOCKERD_RUN:-/run/slac-dockerd}
root=${SLAC_DOCKERD_ROOT:-/var/lib/slac-dockerd}
sock="$run/docker.sock"
pidfile="$run/dockerd.pid"
system_dirs=(/run/docker/plugins /run/docker /run/containerd/s /run/containerd)
log="$run/dockerd.log"
host="unix://$sock"
start_timeout=${SLAC_DOCKERD_START_TIMEOUT:-60}

die() {
    echo "scripts/dockerd.sh: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "the engine runs as root: sudo $0 $*"
}

lock() {  # one start or stop at a time (on the data root: it belongs to one engine)
    mkdir -p "$root"
    exec 9<"$root"
    flock 9
}

running_as() {  # PID NAME: whether process PID runs (not a zombie) and is NAME
    local stat
    [ -n "$1" ] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $stat == "$1 ($2) "[^Z]* ]]
}

pid_alive() {  # the PID in the pidfile, if that process is a running dockerd
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    running_as "$pid" dockerd || return 1
    echo "$pid"
}

answers() {
    [ -S "$sock" ] && DOCKER_HOST="$host" timeout 10 docker version >/dev/null 2>&1
}

print_env() {
    echo "export DOCKER_HOST=$host"
}

our_mounts() {  # mount points under the data root or the run directory, deepest first
    awk -v a="$root" -v b="$run" '$5 == a || index($5, a "/") == 1 || $5 == b || index($5, b "/") == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r
}

our_processes() {  # the engine's containerd and container shims (named by their socket)
    pgrep -f -- "$run/exec/containerd/" || true
}

containerd_pid() {  # the engine's own containerd, if it runs
    local pid
    pid=$(cat "$run/exec/containerd/containerd.pid" 2>/dev/null) || return 0
    if running_as "$pid" containerd; then
        echo "$pid"
    fi
}

end_containerd() {  # dockerd ends it when it stops; not when dockerd was killed
    local pid=$1 waited=0
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    while running_as "$pid" containerd && [ "$waited" -lt 50 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
}

unmount_ours() {
    local mnt
    for mnt in $(our_mounts); do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    done
    if [ -n "$(our_mounts)" ]; then
        die "mounts left under $root or $run: $(our_mounts | tr '\n' ' ')"
    fi
}

start() {
    need_root start
    lock
    command -v dockerd >/dev/null || die "no dockerd: apt-get install docker.io"
    command -v docker >/dev/null || die "no docker command: apt-get install docker.io"
    if pid=$(pid_alive) && answers; then
        echo "scripts/dockerd.sh: engine already running (PID $pid, $host)" >&2
        print_env
        return 0
    fi
    if pid=$(pid_alive); then
        die "a dockerd (PID $pid) holds $pidfile but does not answer on $sock: $0 stop"
    fi
    if [ -n "$(our_processes)" ]; then
        # a killed engine's containerd or container shims still run: the new engine takes
        # them over (from the run directory, which stays) and stops those containers
        echo "scripts/dockerd.sh: taking over the containers of an engine that was killed" >&2
        rm -f "$sock" "$pidfile"
        # containerd dies with dockerd: a new one then takes the shims over from its state
        [ -n "$(containerd_pid)" ] || rm -f "$run/exec/containerd/containerd.pid"
    else
        # what a killed engine left otherwise: its mounts and its run directory
        unmount_ours
        rm -rf "$run"
    fi
    mkdir -p "$run"
    # directories the engine and its containerd make outside their own roots (plugin
    # discovery, the shims' sockets): those that do not exist now go again at stop
    local dir
    for dir in "${system_dirs[@]}"; do
        [ -e "$dir" ] || grep -qxF "$dir" "$run/made-dirs" 2>/dev/null ||
            echo "$dir" >>"$run/made-dirs"
    done
    # not /etc/docker/daemon.json: only these settings count; the engine's identity key
    # (20.10 writes /etc/docker/key.json by default) goes into the data root
    printf '{"deprecated-key-path": "%s/key.json"}\n' "$root" >"$run/daemon.json"
    # setsid: the engine outlives the shell that started it; `stop` ends it by its PID.
    # 9<&-: the lock is not handed down to it
    setsid dockerd \
        --host "$host" \
        --pidfile "$pidfile" \
        --exec-root "$run/exec" \
        --data-root "$root" \
        --config-file "$run/daemon.json" \
        --storage-driver overlay2 \
        --bridge none \
        --iptables=false \
        --ip-forward=false \
        --ip-masq=false \
        --userland-proxy=false \
        --log-level warn \
        </dev/null >"$log" 2>&1 9<&- &
    local child=$! waited=0
    until answers; do
        if ! kill -0 "$child" 2>/dev/null; then
            tail -n 20 "$log" >&2
            die "dockerd exited before it answered (log above, $log)"
        fi
        if [ "$waited" -ge $((start_timeout * 10)) ]; then
            tail -n 20 "$log" >&2
            kill "$child" 2>/dev/null || true
            die "dockerd did not answer within ${start_timeout} s (log above)"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "scripts/dockerd.sh: engine up in $((waited / 10)).$((waited % 10)) s (PID $child, $host)" >&2
    print_env
}

stop() {
    need_root stop
    [ -d "$root" ] || [ -d "$run" ] || return 0
    lock
    local pid containerd waited=0
    containerd=$(containerd_pid)
    if pid=$(pid_alive); then
        kill -TERM "$pid"
        # dockerd stops its containers (their own stop timeout, 10 s) and its containerd
        while running_as "$pid" dockerd && [ "$waited" -lt 300 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if running_as "$pid" dockerd; then
            echo "scripts/dockerd.sh: dockerd (PID $pid) still running after 30 s: killed" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    end_containerd "$containerd"
    local shim child
    for shim in $(pgrep -f -- "-address $run/exec/containerd/" || true); do
        # a container that outlived its engine (it was killed): end it, then its shim
        for child in $(pgrep -P "$shim" || true); do
            kill -KILL "$child" 2>/dev/null || true
        done
        kill -TERM "$shim" 2>/dev/null || true
    done
    local dir
    unmount_ours
    if [ -f "$run/made-dirs" ]; then
        while IFS= read -r dir; do
            rmdir "$dir" 2>/dev/null || true  # only when empty: nothing of anyone else's
        done <"$run/made-dirs"
    fi
    rm -rf "$run"
    echo "scripts/dockerd.sh: engine stopped (images and build cache kept in $root)" >&2
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers ;;
    env) print_env ;;
    purge)
        stop
        rm -rf "$root"
        echo "scripts/dockerd.sh: removed $root" >&2
        ;;
    *)
        echo "usage: $0 start|stop|status|env|purge" >&2
        exit 2
        ;;
esac
