#!/usr/bin/env bash
# Push what images/build.sh built, so that a cluster can pull it:
#   ${IMAGE_REGISTRY}/{base,trainer,predictor}:${IMAGE_TAG} (and trainer-gpu with GPU=1)
#
# Environment:
#   IMAGE_REGISTRY, IMAGE_TAG  the names build.sh tagged (and the pipelines were compiled with);
#                              a localhost/ registry cannot be pushed to: set PUSH_TO
#   PUSH_TO                    push elsewhere than the images' own names:
#                                oci:DIR           an OCI image layout per image, DIR/<role>:<tag>
#                                dir:DIR           a plain directory per image, DIR/<role>-<tag>
#                                docker://HOST/NS  a registry: HOST/NS/<role>:<tag>
#   GPU=1                      also push trainer-gpu
#   CONTAINER_ENGINE           docker or podman (docker pushes to registries only)
# Log in first (`podman login HOST` / `docker login HOST`); this script never reads credentials.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGISTRY=${IMAGE_REGISTRY:-localhost/fuseml-kfp}
REGISTRY=${REGISTRY%/}
TAG=${IMAGE_TAG:-0.1.0}
PUSH_TO=${PUSH_TO:-}
PUSH_TO=${PUSH_TO%/}
ROLES=(base trainer predictor)
[ "${GPU:-0}" != 1 ] || ROLES+=(trainer-gpu)

. "$ROOT/images/engine.sh"

[ "$TAG" != latest ] || die "IMAGE_TAG=latest is refused: pin a version so runs are reproducible"
if [ -z "$PUSH_TO" ] && [[ $REGISTRY == localhost/* || $REGISTRY == localhost ]]; then
    die "$REGISTRY is this machine's store, not a registry: set IMAGE_REGISTRY (rebuild and recompile with it) or PUSH_TO"
fi

case $PUSH_TO in
    "" | oci:?* | dir:?* | docker://?*) ;;
    *) die "PUSH_TO=$PUSH_TO: use oci:DIR, dir:DIR or docker://HOST/NAMESPACE" ;;
esac

destination() {  # destination ROLE: where that image goes, in the engine's transport syntax
    local role=$1
    case $PUSH_TO in
        "") echo "$REGISTRY/$role:$TAG" ;;
        oci:*) echo "$PUSH_TO/$role:$TAG" ;;
        dir:*) echo "$PUSH_TO/$role-$TAG" ;;
        docker://*) echo "$PUSH_TO/$role:$TAG" ;;
    esac
}

main() {
    choose_engine
    local role source target
    for role in "${ROLES[@]}"; do
        source=$REGISTRY/$role:$TAG
        "${ENGINE[@]}" image inspect "$source" >/dev/null 2>&1 || die "$source is not built: run make images first"
        target=$(destination "$role")
        case $target in oci:* | dir:*) mkdir -p "$(dirname "${target#*:}")" ;; esac
        log "pushing $source -> $target"
        if [ "${ENGINE[0]}" = docker ]; then
            [[ $target != oci:* && $target != dir:* ]] || die "docker pushes to registries only: use podman for $PUSH_TO"
            target=${target#docker://}
            [ "$target" = "$source" ] || docker tag "$source" "$target"
            docker push "$target" >&2
        else
            "${ENGINE[@]}" push --quiet "$source" "$target" >&2
        fi
    done
    log "pushed ${ROLES[*]} in $(($(date +%s) - START))s"
}

main "$@"
