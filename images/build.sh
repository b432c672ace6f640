#!/usr/bin/env bash
# Build the component images with docker (when a daemon answers) or podman:
#   ${IMAGE_REGISTRY:-localhost/fuseml-kfp}/{base,trainer,predictor}:${IMAGE_TAG:-0.1.0}
# plus .../deps:TAG, the shared dependency stage the trainer builds on (not pushed), and with
# GPU=1 .../trainer-gpu:TAG, the trainer with TensorFlow's CUDA wheels (gigabytes; not in CI).
# images/push.sh pushes them.
#
# Environment:
#   IMAGE_REGISTRY, IMAGE_TAG  where the images are tagged (the same variables the pipelines
#                              read when they are compiled; IMAGE_TAG=latest is refused)
#   CODE_VERSION               recorded in the images (default: git rev-parse --short HEAD)
#   CONTAINER_ENGINE           docker or podman, to skip the detection
#   PYTHON_IMAGE               the Python 3.11 base; default docker.io/library/python:3.11-slim-bookworm,
#                              or a Debian bookworm base made with debootstrap when no registry answers
#   CA_BUNDLE                  CA bundle handed to pip as a build secret (default: the host's)
#   DEBIAN_MIRROR              mirror for debootstrap (default http://deb.debian.org/debian)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGISTRY=${IMAGE_REGISTRY:-localhost/fuseml-kfp}
REGISTRY=${REGISTRY%/}
TAG=${IMAGE_TAG:-0.1.0}
CODE_VERSION=${CODE_VERSION:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEFAULT_PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm
# Made here with debootstrap when no public registry can be reached; never pushed.
LOCAL_PYTHON_IMAGE=localhost/fuseml-kfp/python-debootstrap:3.11-bookworm

. "$ROOT/images/engine.sh"

[ "$TAG" != latest ] || die "IMAGE_TAG=latest is refused: pin a version so runs are reproducible"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/fuseml-images.XXXXXX")
cleanup() { rm -rf "$SCRATCH"; }
trap cleanup EXIT

image_exists() { "${ENGINE[@]}" image inspect "$1" >/dev/null 2>&1; }

# --- the Python base --------------------------------------------------------------------
debootstrap_base() {
    if image_exists "$LOCAL_PYTHON_IMAGE"; then
        log "Python base: $LOCAL_PYTHON_IMAGE (cached)"
        return
    fi
    command -v debootstrap >/dev/null || apt_install debootstrap
    [ "$(id -u)" = 0 ] || die "debootstrap needs root; or set PYTHON_IMAGE to a Python 3.11 image you can pull"
    local rootfs=$SCRATCH/rootfs
    log "Python base: no registry answers; debootstrap bookworm (python3, python3-venv, ca-certificates) from $DEBIAN_MIRROR, about a minute"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$SCRATCH/debootstrap.log" 2>&1 \
        || { tail -20 "$SCRATCH/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/bootstrap.log
    tar -C "$rootfs" -c . | "${ENGINE[@]}" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$LOCAL_PYTHON_IMAGE" >/dev/null || die "importing the debootstrap root file system failed"
    rm -rf "$rootfs"
    log "Python base: $LOCAL_PYTHON_IMAGE ($("${ENGINE[@]}" run --rm "$LOCAL_PYTHON_IMAGE" python3 --version))"
}

choose_python_image() {
    if [ -n "${PYTHON_IMAGE:-}" ]; then
        log "Python base: $PYTHON_IMAGE (PYTHON_IMAGE)"
        return
    fi
    if image_exists "$DEFAULT_PYTHON_IMAGE"; then
        PYTHON_IMAGE=$DEFAULT_PYTHON_IMAGE
    elif log "Python base: pulling $DEFAULT_PYTHON_IMAGE" \
        && timeout 600 "${ENGINE[@]}" pull "$DEFAULT_PYTHON_IMAGE" >"$SCRATCH/pull.log" 2>&1; then
        PYTHON_IMAGE=$DEFAULT_PYTHON_IMAGE
    else
        log "pull failed: $(tail -1 "$SCRATCH/pull.log")"
        debootstrap_base
        PYTHON_IMAGE=$LOCAL_PYTHON_IMAGE
        return
    fi
    log "Python base: $PYTHON_IMAGE"
}

# --- the build --------------------------------------------------------------------------
# Only what the images need goes into the build context (not .venv, .local or tests).
stage_context() {
    CONTEXT=$SCRATCH/context
    mkdir -p "$CONTEXT"
    tar -C "$ROOT" --exclude=__pycache__ --exclude=tests --exclude='*.pyc' \
        -cf - requirements.txt pyproject.toml components pipelines | tar -C "$CONTEXT" -xf -
    # podman's layer cache does not see a changed --build-arg: a file in the copied sources
    # makes a new commit (or other image names) rebuild the project layer, and with it the ENVs.
    printf '%s\n' "$CODE_VERSION" "$REGISTRY" "$TAG" > "$CONTEXT/components/.code-version"
}

build() {  # build DOCKERFILE IMAGE [extra build args...]
    local dockerfile=$1 image=$2 started=$SECONDS
    shift 2
    local args=(build -f "$ROOT/images/$dockerfile" -t "$image")
    if [ -s "$CA_BUNDLE" ]; then
        args+=(--secret "id=ca,src=$CA_BUNDLE")
    fi
    if [ "${ENGINE[0]}" = docker ]; then
        args+=(--progress=plain)
    fi
    log "building $image ($dockerfile $*)"
    "${ENGINE[@]}" "${args[@]}" "$@" "$CONTEXT" || die "building $image failed"
    log "built $image in $((SECONDS - started))s"
}

main() {
    log "images $REGISTRY/{base,trainer,predictor$([ "${GPU:-0}" != 1 ] || echo ,trainer-gpu)}:$TAG, CODE_VERSION=$CODE_VERSION"
    choose_engine
    choose_python_image
    stage_context
    build base/Dockerfile "$REGISTRY/deps:$TAG" --target deps --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE"
    build base/Dockerfile "$REGISTRY/base:$TAG" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
        --build-arg "CODE_VERSION=$CODE_VERSION" --build-arg "IMAGE_REGISTRY=$REGISTRY" --build-arg "IMAGE_TAG=$TAG"
    build trainer/Dockerfile "$REGISTRY/trainer:$TAG" --build-arg "DEPS_IMAGE=$REGISTRY/deps:$TAG" \
        --build-arg "CODE_VERSION=$CODE_VERSION"
    # The predictor inherits the trainer's CODE_VERSION.
    build predictor/Dockerfile "$REGISTRY/predictor:$TAG" --build-arg "TRAINER_IMAGE=$REGISTRY/trainer:$TAG"
    local roles=(base trainer predictor)
    if [ "${GPU:-0}" = 1 ]; then
        build trainer/Dockerfile "$REGISTRY/trainer-gpu:$TAG" --build-arg "DEPS_IMAGE=$REGISTRY/deps:$TAG" \
            --build-arg "CODE_VERSION=$CODE_VERSION" --build-arg "TENSORFLOW=tensorflow[and-cuda]"
        roles+=(trainer-gpu)
    fi
    for role in "${roles[@]}"; do
        log "$REGISTRY/$role:$TAG $("${ENGINE[@]}" image inspect --format '{{.Id}} {{.Size}}' "$REGISTRY/$role:$TAG" \
            | awk '{printf "%s %.0f MB", substr($1, 1, 19), $2 / 1e6}')"
    done
    log "done in $(($(date +%s) - START))s"
}

main "$@"
