"""The compiled sum pipeline, run by kfp's local runner against the real store and model server."""

import subprocess
import sys
from pathlib import Path

import pytest

from components.deploy.repository_client import served_version
from components.serving.client import infer_v2, predict_v1
from components.store.model_registry import complete_versions, read_card
from pipelines import cli
from pipelines.registry import registry

pytestmark = pytest.mark.integration

SMALL = ["size=4000", "eval_size=1000", "epochs=12", "max_relative_mae=0.02"]


def run(model_server, overrides):
    params = cli.local_params(registry()["sum"], overrides)
    assert params["server_url"] == model_server
    registry()["sum"].validate(params)
    return params, cli.run_locally("sum", params)


@pytest.mark.parametrize(
    "param, message",
    [
        ("size=-5", "size must be positive"),
        ("recipe=gaussian", "unknown recipe"),
        ("low=20000", "low < high"),
        ("max_relative_mae=0", "max_relative_mae must be positive"),
        ("epochs=two", "not a valid int"),
        ("colour=red", "unknown parameter"),
    ],
)
def test_bad_parameters_fail_before_any_work(param, message, store, tmp_path):
    before = store.list_keys("models", "") if "models" in [b.name for b in store.client.list_buckets()] else []
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "sum", "--param", param], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and message in result.stderr
    after = store.list_keys("models", "") if before else []
    assert after == before


def test_sum_pipeline_deploys_a_good_model_and_refuses_a_skewed_one(store, model_server):
    params, sum_run = run(model_server, SMALL + ["seed=11"])
    version = sum_run.task_outputs("deploy-model")["parameterValues"]["Output"]
    assert served_version(model_server, "sum") == version
    card = read_card(store, "sum", version)
    assert card.data_recipe == "uniform" and card.metrics["relative_mae"] <= 0.02 and card.artifact_digest
    v1 = predict_v1(model_server, "sum", [[2000, 3000], [10, 10000]])
    assert v1["model_version"] == version
    assert v1["predictions"][0] == pytest.approx(5000, rel=0.02)
    v2 = infer_v2(model_server, "sum", "pairs", [[2000, 3000]])
    assert v2["outputs"][0]["data"][0] == pytest.approx(v1["predictions"][0], rel=1e-6)
    summary = registry()["sum"].summarize(params, sum_run)
    assert "No drift detected" in summary or "Drift detected" in summary
    assert "PASS" in summary and f"version {version}" in summary and "4857.6670".replace("4857", "4,857") in summary

    versions_before = complete_versions(store, "sum")
    _, skewed = run(model_server, SMALL + ["recipe=seed-equal-pairs", "epochs=5"])
    evaluation = skewed.task_outputs("evaluate-sum-model")
    assert evaluation["parameterValues"]["Output"] is False
    validation = skewed.task_outputs("validate-data")
    assert validation["parameterValues"]["Output"] is False
    summary = Path(validation["artifacts"]["summary"]["artifacts"][0]["uri"]).read_text()
    assert "Spearman correlation 1.00 in reference" in summary
    assert not (skewed.run_dir / "deploy-model").exists()
    assert served_version(model_server, "sum") == version
    assert complete_versions(store, "sum") == versions_before
