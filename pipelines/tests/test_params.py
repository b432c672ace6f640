"""Parameters: parsing, the shared checks, and presets that stay what the pipelines compile."""

import inspect

import pytest

from components.three_body.presets import PRESETS
from pipelines.params import check_shared
from pipelines.registry import registry


def test_the_three_body_defaults_are_the_local_preset():
    pipeline = registry()["three-body"].pipeline
    defaults = {k: p.default for k, p in inspect.signature(pipeline.pipeline_func).parameters.items()}
    assert {k: defaults[k] for k in PRESETS["local"]} == PRESETS["local"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_passes_its_own_checks(preset):
    entry = registry()["three-body"]
    entry.validate(entry.params([], preset))


@pytest.mark.parametrize(
    "name, pairs, message",
    [
        ("three-body", ["shard_size=0"], "shard_size"),
        ("three-body", ["accelerator_count=-1"], "accelerator_count"),
        ("three-body", ["schedule=linear"], "schedule"),
        ("sum", ["canary_percent=100"], "canary_percent"),
        ("sum", ["deploy_target=moon"], "deploy_target"),
        ("monitor", ["drift_alpha=1.5"], "drift_alpha"),
    ],
)
def test_bad_values_are_named_before_any_work(name, pairs, message):
    entry = registry()[name]
    with pytest.raises(ValueError, match=message):
        entry.validate(entry.params(pairs))


def test_unknown_names_and_bad_types_are_refused():
    entry = registry()["sum"]
    with pytest.raises(ValueError, match="unknown parameter 'colour'"):
        entry.params(["colour=red"])
    with pytest.raises(ValueError, match="not a valid int"):
        entry.params(["epochs=two"])
    with pytest.raises(ValueError, match="unknown preset"):
        registry()["three-body"].params([], "huge")


def test_shared_checks_skip_what_a_pipeline_does_not_have():
    check_shared({"epochs": 3})
