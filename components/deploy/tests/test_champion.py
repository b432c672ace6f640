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
def test_no_champion_before_the_first_deployment(store, tmp_path):
    assert load_champion(store, "never-deployed", tmp_path, lambda path: None) is None
