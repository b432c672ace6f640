"""The tail every training pipeline shares: deploy the evaluated model only if its gate passed."""

from __future__ import annotations

from kfp import dsl
from kfp.dsl import PipelineTask

from components.deploy.component import deploy_model
from pipelines.controls import SERVING, side_effect
from pipelines.store_access import with_store_access


def deploy_if_passed(
    evaluated: PipelineTask,
    trained: PipelineTask,
    training_data: dsl.PipelineChannel,
    model_name: str,
    deploy_target: dsl.PipelineChannel,
    server_url: dsl.PipelineChannel,
    store_endpoint: dsl.PipelineChannel,
    canary_percent: dsl.PipelineChannel,
) -> None:
    """`evaluated` returns the gate's verdict (True: may ship) and logs the metrics for the card."""
    with dsl.If(evaluated.outputs["Output"] == True, name="gate passed"):
        deployed = deploy_model(
            model=trained.outputs["model"],
            metrics=evaluated.outputs["metrics"],
            training_data=training_data,
            model_name=model_name,
            target=deploy_target,
            server_url=server_url,
            store_endpoint=store_endpoint,
            canary_percent=canary_percent,
        )
        side_effect(with_store_access(deployed), SERVING).set_display_name("publish and deploy")
