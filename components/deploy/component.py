"""KFP component that publishes a model version and puts it into service."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model

from components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def deploy_model(
    model: Input[Model], metrics: Input[Metrics], training_data: Input[Dataset], model_name: str, target: str,
    server_url: str, store_endpoint: str, canary_percent: int,
) -> str:
    """Publish to s3://models/<name>/<version>/ with its model card, then serve it; returns the version."""
    import datetime as dt
    from pathlib import Path

    from components.deploy.deploy import deploy
    from components.store.object_store import ObjectStore

    card = {
        "training": model.metadata.get("training", {}),
        "data_sha256": model.metadata.get("data_sha256", ""),
        "data_recipe": model.metadata.get("data_recipe", ""),
        "metrics": dict(metrics.metadata),
        "envelope": model.metadata.get("envelope"),
        "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    version = deploy(ObjectStore.from_env(endpoint=store_endpoint), model_name, Path(model.path), card, target,
                     server_url, Path(training_data.path), canary_percent)
    print(f"deployed {model_name} version {version}", flush=True)
    return version
