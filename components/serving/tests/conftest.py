import pytest

from components.deploy.deploy import deploy
from components.store.object_store import ObjectStore


def train_tiny_sum_model(path, seed=0):
    """Seconds of training: the server tests need a real SavedModel, not a good one."""
    from components.sum.data import SumDataSpec, generate
    from components.saved_model import export
    from components.sum.model import SumTrainingConfig, train

    inputs, targets = generate(SumDataSpec(size=2000, seed=seed))
    export(train(inputs, targets, SumTrainingConfig(epochs=2, learning_rate=3e-3, seed=seed)), path)
    return path


@pytest.fixture(scope="session")
def deployed_sum(store_config, model_server, tmp_path_factory):
    path = train_tiny_sum_model(tmp_path_factory.mktemp("sum-model") / "model")
    card = {"metrics": {}, "envelope": {"columns": ["x", "y"], "low": [0, 0], "high": [10000, 10000]}}
    return deploy(ObjectStore(store_config), "sum", path, card, "local", model_server)
