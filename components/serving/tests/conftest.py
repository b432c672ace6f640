# deployed_sum (a small sum model served by model_server) is a session fixture of the root conftest.py.


def train_tiny_sum_model(path, seed=0):
    """Seconds of training: the server tests need a real SavedModel, not a good one."""
    from components.saved_model import export
    from components.sum.data import SumDataSpec, generate
    from components.sum.model import SumTrainingConfig, train

    inputs, targets = generate(SumDataSpec(size=2000, seed=seed))
    export(train(inputs, targets, SumTrainingConfig(epochs=2, learning_rate=3e-3, seed=seed)), path)
    return path


def tiny_sum_card():
    """The card of a sum model trained on [0, 10000]^2 (what the tests' envelope checks expect)."""
    from components.contract import Envelope, ModelCard
    from components.registry import model_spec

    spec = model_spec("sum")
    return ModelCard(spec.name, spec.schema(), Envelope(spec.input_columns, (0.0, 0.0), (10_000.0, 10_000.0)))


def tiny_three_body_card():
    """The card of a three-body model trained on Breen's region for t <= 3.9."""
    from components.contract import Envelope, ModelCard
    from components.registry import model_spec

    spec = model_spec("three-body")
    return ModelCard(spec.name, spec.schema(), Envelope(spec.input_columns, (0.0, -0.5, 0.0), (3.9, 0.0, 1.0)))
