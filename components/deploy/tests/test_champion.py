from pathlib import Path

import pytest

from components.deploy.champion import decide, load_champion


def test_first_deployment_needs_only_the_threshold():
    assert decide(0.01, 0.05).deploy and "first deployment" in decide(0.01, 0.05).reason
    refused = decide(0.06, 0.05)
    assert not refused.deploy and "exceeds the threshold" in refused.reason


def test_challenger_may_be_worse_only_within_tolerance():
    assert decide(0.0104, 0.05, champion_score=0.01, champion_version="7", tolerance=0.05).deploy
    worse = decide(0.0106, 0.05, champion_score=0.01, champion_version="7", tolerance=0.05)
    assert not worse.deploy and "worse than champion 7" in worse.reason
    assert worse.as_dict()["champion_score"] == 0.01


def test_nan_score_and_negative_tolerance_are_refused():
    assert not decide(float("nan"), 0.05).deploy
    with pytest.raises(ValueError, match="tolerance"):
        decide(0.01, 0.05, tolerance=-0.1)


@pytest.mark.integration
def test_no_champion_before_the_first_deployment(store):
    assert load_champion(store, "never-deployed", lambda path: None) is None


@pytest.mark.integration
def test_the_champion_is_loaded_and_its_download_removed(store, tmp_path):
    import dataclasses

    import numpy as np

    from components.serving.tests.conftest import tiny_sum_card, train_tiny_sum_model
    from components.store.model_registry import publish_model, set_serving_version
    from components.sum.model import load_predictor

    card = dataclasses.replace(tiny_sum_card(), model_name="champion-probe")
    version = publish_model(store, train_tiny_sum_model(tmp_path / "model"), card)
    set_serving_version(store, "champion-probe", version)
    downloaded: list[Path] = []

    def loader(path: Path):
        downloaded.append(path)
        return load_predictor(path)

    champion = load_champion(store, "champion-probe", loader)
    assert champion is not None and champion[0] == version
    assert downloaded and not downloaded[0].exists(), "the champion's download outlived the call"
    assert champion[1](np.array([[1000.0, 2000.0]])).shape == (1,)  # loaded into memory: still answers
