"""Container images of the components, from one place.

The registry and tag are read when pipelines are compiled (`IMAGE_REGISTRY`, `IMAGE_TAG`), so
one set of sources compiles for a laptop's podman store or a team registry; never `:latest`.
"""

import os

DEFAULT_REGISTRY = "localhost/fuseml-kfp"
DEFAULT_TAG = "0.1.0"


def image(role: str) -> str:
    registry = os.environ.get("IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")
    tag = os.environ.get("IMAGE_TAG", DEFAULT_TAG)
    if tag == "latest":
        raise ValueError("IMAGE_TAG=latest is refused: pin a version so runs are reproducible")
    return f"{registry}/{role}:{tag}"


BASE_IMAGE = image("base")
TRAINER_IMAGE = image("trainer")
