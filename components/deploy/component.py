"""KFP component that publishes a model version and puts it into service."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model

from components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def deploy_model(
    model: Input[Model],
    metrics: Input[Metrics],
    training_data: Input[Dataset],
    model_name: str,
    target: str,
    server_url: str,
    store_endpoint: str,
    canary_percent: int,
) -> str:
    """Publish to s3://models/<name>/<version>/ with its model card, then serve it; returns the version.

    Args:
        model: The model that passed its gate, with the card its training wrote.
        metrics: The evaluation's metrics, recorded in the card.
        training_data: Stored beside the model so monitoring can compare traffic with it.
        model_name: The model's registered name (`sum`, `three-body`).
        target: `kserve` (an InferenceService in the run's namespace), `local` (a model server
            at `server_url`) or `none` (publish only).
        server_url: The local model server's address (target `local` only).
        store_endpoint: Object store host:port; empty means the MINIO_ENDPOINT of the pod.
        canary_percent: With target `kserve`, the share of traffic the new version gets first (0: all).
    """
    import dataclasses
    from pathlib import Path

    from components.deploy.deploy import deploy
    from components.store.object_store import ObjectStore
    from components.training import card_of

    card = card_of(model.metadata)
    if card.model_name != model_name:
        raise ValueError(f"the model artifact is a {card.model_name!r} model, not {model_name!r}")
    card = dataclasses.replace(card, metrics=dict(metrics.metadata))
    version = deploy(
        ObjectStore.from_env(endpoint=store_endpoint),
        Path(model.path),
        card,
        target,
        server_url,
        Path(training_data.path),
        canary_percent,
    )
    print(f"deployed {model_name} version {version}", flush=True)
    return version
