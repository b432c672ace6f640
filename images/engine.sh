# Shared by build.sh and push.sh (sourced, needs ROOT): logging, and the container engine,
# docker when a daemon answers, else podman with the settings these machines need.
# shellcheck shell=bash

START=$(date +%s)
PODMAN_CONF=$ROOT/.local/podman/containers.conf
log() { printf '[images +%ss] %s\n' "$(($(date +%s) - START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

apt_install() {
    if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
        die "$* missing and cannot be installed here (needs root and apt-get): install it and rerun"
    fi
    log "installing $* with apt-get"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
        return
    fi
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
        || die "apt-get install $* failed"
}

# --- the engine -------------------------------------------------------------------------
ENGINE=()
choose_engine() {
    local wanted=${CONTAINER_ENGINE:-}
    if [ -z "$wanted" ] || [ "$wanted" = docker ]; then
        if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
            ENGINE=(docker)
            export DOCKER_BUILDKIT=1  # RUN --mount=type=secret needs BuildKit
            log "engine: docker ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
            return
        fi
        [ -z "$wanted" ] || die "CONTAINER_ENGINE=docker but no docker daemon answers"
    fi
    command -v podman >/dev/null || apt_install podman
    command -v runc >/dev/null || apt_install runc
    # The settings podman needs on these machines (root in a container, no systemd, no
    # setrlimit): kept under .local/, pointed to by CONTAINERS_CONF unless one is set already.
    if [ -z "${CONTAINERS_CONF:-}" ]; then
        mkdir -p "$(dirname "$PODMAN_CONF")"
        cat >"$PODMAN_CONF" <<'EOF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
        export CONTAINERS_CONF=$PODMAN_CONF
    fi
    ENGINE=(podman --runtime=runc)
    "${ENGINE[@]}" info >/dev/null || die "podman does not work here (podman info failed)"
    log "engine: podman $(podman version --format '{{.Client.Version}}'), CONTAINERS_CONF=$CONTAINERS_CONF"
}

