# deployed_sum (a small sum model served by model_server) is a session fixture of the root conftest.py.


def train_tiny_sum_model(path, seed=0):
    """Seconds of training: the server tests need a real SavedModel, not a good one."""
    from components.sum.data import SumDataSpec, generate
    from components.saved_model import export
    from components.sum.model import SumTrainingConfig, train

    inputs, targets = generate(SumDataSpec(size=2000, seed=seed))
    export(train(inputs, targets, SumTrainingConfig(epochs=2, learning_rate=3e-3, seed=seed)), path)
    return path
