"""Rows, split, network and evaluation of the three-body model, on small real simulations."""

import keras
import numpy as np
import pytest

from components.saved_model import export
from components.three_body import dataset
from components.three_body import model as model_module
from components.three_body.evaluate import (
    evaluate,
    relative_energy_error,
    report_html,
    rows_by_simulation,
    trajectory_plots,
)
from components.three_body.model import (
    ThreeBodyTrainingConfig,
    TrainingProgress,
    build_network,
    load_predictor,
    train,
    train_on_rows,
)
from components.three_body.presets import PRESETS, preset, training_config
from components.three_body.simulate import sample_initial_x2, simulate


@pytest.fixture(scope="module")
def rows():
    x2 = sample_initial_x2(8, seed=3)
    return dataset.to_rows(simulate(x2, 1.0), x2)


def test_rows_pair_time_and_initial_x2_with_positions(rows):
    first = rows.simulation == rows.simulation[0]
    assert rows.inputs.shape[1] == 3 and rows.targets.shape[1] == 4
    assert rows.inputs[first][0, 0] == 0.0 and rows.inputs[first][-1, 0] == pytest.approx(1.0, abs=1 / 256)
    np.testing.assert_allclose(rows.targets[first][0, :2], [1.0, 0.0])  # x1(0) = (1, 0)
    np.testing.assert_allclose(rows.targets[first][0, 2:], rows.inputs[first][0, 1:])  # x2(0) is the input


def test_initial_x2_is_one_row_per_simulation_in_id_order_however_the_rows_lie(rows):
    x2 = sample_initial_x2(8, seed=3)
    ids = np.unique(rows.simulation)
    np.testing.assert_array_equal(rows.initial_x2(), x2[ids])
    shuffled = np.random.default_rng(0).permutation(len(rows.simulation))
    mixed = dataset.TrajectoryRows(rows.inputs[shuffled], rows.targets[shuffled], rows.simulation[shuffled])
    np.testing.assert_array_equal(mixed.initial_x2(), x2[ids])


def test_split_is_by_simulation_with_no_trajectory_on_both_sides(rows):
    train_ids, validation_ids = dataset.split_by_simulation(rows.simulation, 0.25, seed=0)
    assert set(train_ids).isdisjoint(validation_ids)
    assert set(train_ids) | set(validation_ids) == set(rows.simulation)
    assert set(rows.subset(validation_ids).simulation) == set(validation_ids)
    with pytest.raises(ValueError, match="validation_fraction"):
        dataset.split_by_simulation(rows.simulation, 1.0, seed=0)
    with pytest.raises(ValueError, match="at least 2"):
        dataset.split_by_simulation(np.zeros(5), 0.5, seed=0)


def test_every_kth_time_thins_each_trajectory_and_all_together_cover_every_time(rows):
    assert dataset.every_kth_time(rows, 1) is rows
    thinned = dataset.every_kth_time(rows, 3)
    steps = np.rint(rows.inputs[:, 0] * 256).astype(int)
    kept_steps = np.rint(thinned.inputs[:, 0] * 256).astype(int)
    for sim in np.unique(rows.simulation):
        own = kept_steps[thinned.simulation == sim]
        assert np.all(np.diff(own) == 3) and own[0] < 3  # every 3rd point from the start of the run
        assert len(own) == pytest.approx((rows.simulation == sim).sum() / 3, abs=1)
    assert set(kept_steps) == set(steps)  # starting at a different time in each simulation
    kept = {tuple(r) for r in thinned.inputs}
    np.testing.assert_array_equal(  # each kept row keeps its own target
        thinned.targets, rows.targets[[tuple(r) in kept for r in rows.inputs]]
    )


def test_train_on_rows_thins_the_fitted_rows_only(rows, monkeypatch):
    seen = {}

    def record(inputs, targets, config, on_epoch=None, *, validation=None, on_progress=None):
        seen.update(fit=len(inputs), held=len(validation[0]))

    monkeypatch.setattr(model_module, "train", record)
    config = ThreeBodyTrainingConfig(**TINY, holdout_fraction=0.25, time_stride=4)
    train_on_rows(rows, config)
    fit_ids, held_ids = dataset.split_by_simulation(rows.simulation, 0.25, seed=0)
    assert seen["held"] == len(rows.subset(held_ids).inputs)  # the hold-out scores every time
    assert seen["fit"] == pytest.approx(len(rows.subset(fit_ids).inputs) / 4, abs=len(fit_ids))


def test_true_trajectories_score_zero_error_and_conserve_energy(rows):
    exact = {tuple(r): t for r, t in zip(rows.inputs, rows.targets)}
    evaluation = evaluate(lambda q: np.array([exact[tuple(r)] for r in q]), rows, t_max=1.0, timing_repeats=1)
    assert evaluation.mae == 0.0 and evaluation.simulation_mae_max == 0.0
    assert evaluation.energy_error_median < 1e-3  # finite-difference velocities of the true orbit
    assert evaluation.integrator_seconds > 0 and evaluation.metrics()["speedup_single"] > 0


def test_rows_by_simulation_groups_like_a_mask_per_simulation_in_one_pass():
    simulation = np.array([7, 2, 7, 9, 2, 2, 9, 7])
    groups = rows_by_simulation(simulation)
    assert [g.tolist() for g in groups] == [np.flatnonzero(simulation == s).tolist() for s in (2, 7, 9)]


def test_energy_error_grows_for_a_wrong_trajectory(rows):
    first = rows.simulation == rows.simulation[0]
    positions = np.stack(
        [
            rows.targets[first][:, :2],
            rows.targets[first][:, 2:],
            -rows.targets[first][:, :2] - rows.targets[first][:, 2:],
        ],
        axis=1,
    )
    times = rows.inputs[first][:, 0]
    # Finite differences are rough through a close encounter, so compare typical values.
    assert np.median(relative_energy_error(times, positions)) < 1e-3
    assert np.median(relative_energy_error(times, positions * 1.2)) > 0.1


@pytest.mark.integration  # trains a network
def test_network_exports_all_three_bodies(rows, tmp_path):
    model = train(rows.inputs, rows.targets, ThreeBodyTrainingConfig(hidden_layers=2, units=16, epochs=1))
    export(model, tmp_path / "m")
    predicted = load_predictor(tmp_path / "m")(rows.inputs[:5])
    assert predicted.shape == (5, 6)
    np.testing.assert_allclose(predicted[:, 4:], -(predicted[:, :2] + predicted[:, 2:4]), atol=1e-5)
    plots = trajectory_plots(load_predictor(tmp_path / "m"), rows, cases=2)
    page = report_html(evaluate(load_predictor(tmp_path / "m"), rows, 1.0, timing_repeats=1), "PASS", plots, 0.08)
    assert page.count("<svg") == 3 and "speedup_single" in page  # two orbits, the per-simulation MAE


TINY = {"hidden_layers": 2, "units": 16}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hidden_layers", 0, "hidden_layers must be a positive integer"),
        ("units", 2.5, "units must be a positive integer"),
        ("batch_size", -1, "batch_size must be a positive integer"),
        ("epochs", True, "epochs must be a positive integer"),
        ("learning_rate", 0.0, "learning_rate must be a positive number"),
        ("learning_rate", float("nan"), "learning_rate must be a positive number"),
        ("schedule", "linear", "schedule must be one of constant, cosine"),
        ("time_budget_s", -1.0, "time_budget_s must be a number >= 0"),
        ("time_budget_s", float("inf"), "time_budget_s must be a number >= 0"),
        ("patience", -2, "patience must be an integer >= 0"),
        ("seed", -1, "seed must be an integer >= 0"),
        ("holdout_fraction", 1.0, "holdout_fraction must be in \\[0, 1\\)"),
        ("time_stride", 0, "time_stride must be a positive integer"),
    ],
)
def test_config_names_the_bad_parameter(field, value, message):
    with pytest.raises(ValueError, match=message):
        ThreeBodyTrainingConfig(**{field: value}).validate()
    with pytest.raises(ValueError, match=message):
        train(np.zeros((4, 3)), np.zeros((4, 4)), ThreeBodyTrainingConfig(**{field: value}))


def test_scaling_is_baked_into_the_model():
    """The hidden layers see standardized inputs, and a zero network output means the targets' mean."""
    rng = np.random.default_rng(0)
    inputs = np.column_stack([rng.uniform(0, 100, 2000), rng.uniform(-0.5, 0, 2000), rng.uniform(0, 1, 2000)])
    targets = rng.normal(loc=[50.0, -20.0, 3.0, 7.0], scale=[10.0, 1.0, 0.1, 5.0], size=(2000, 4))
    network = build_network(ThreeBodyTrainingConfig(**TINY), inputs, targets)
    standardized = np.asarray(network.get_layer("standardize")(inputs.astype("float32")))
    np.testing.assert_allclose(standardized.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(standardized.std(axis=0), 1.0, atol=1e-3)
    for layer in network.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    predicted = np.asarray(network(inputs.astype("float32")))
    np.testing.assert_allclose(predicted, np.broadcast_to(targets.mean(axis=0), predicted.shape), rtol=1e-5, atol=1e-5)


@pytest.mark.integration  # trains a network
def test_exported_model_takes_raw_inputs_and_returns_raw_positions(tmp_path):
    inputs = np.column_stack([np.linspace(0, 3.9, 400), np.full(400, -0.2), np.full(400, 0.5)])
    targets = np.column_stack([inputs[:, 0] * 10, np.ones(400), -inputs[:, 0], np.full(400, 5.0)])
    model = train(inputs, targets, ThreeBodyTrainingConfig(**TINY, epochs=60, batch_size=64, learning_rate=3e-3))
    export(model, tmp_path / "m")
    predicted = load_predictor(tmp_path / "m")(inputs)
    assert np.abs(predicted[:, :4] - targets).mean() < 0.3  # of targets spanning 0..39


@pytest.mark.integration  # trains a network
def test_early_stopping_returns_the_best_epoch_and_stops_after_patience(rows):
    fit_ids, held_ids = dataset.split_by_simulation(rows.simulation, 0.25, seed=0)
    fit, held = rows.subset(fit_ids), rows.subset(held_ids)
    curve: list[TrainingProgress] = []
    config = ThreeBodyTrainingConfig(
        **TINY, epochs=40, batch_size=32, learning_rate=0.05, schedule="constant", patience=3
    )
    model = train(fit.inputs, fit.targets, config, validation=(held.inputs, held.targets), on_progress=curve.append)
    held_out = [p.validation_mae for p in curve]
    best = int(np.argmin(held_out))
    assert len(curve) == best + 1 + 3 < 40  # a high constant rate plateaus: it stopped 3 epochs after the best
    final = float(np.abs(np.asarray(model(held.inputs.astype("float32")))[:, :4] - held.targets).mean())
    assert final == pytest.approx(held_out[best], rel=1e-3) and final < held_out[-1]


@pytest.mark.integration  # trains a network
def test_time_budget_stops_training_and_still_anneals(rows):
    curve: list[TrainingProgress] = []
    config = ThreeBodyTrainingConfig(
        **TINY, epochs=100_000, batch_size=8, learning_rate=1e-3, time_budget_s=3.0, holdout_fraction=0.25
    )
    train_on_rows(rows, config, on_progress=curve.append)
    assert 1 <= len(curve) < 100_000 and curve[-1].seconds < 3.0 + 3.0
    assert curve[-1].learning_rate < 0.05 * config.learning_rate  # cosine reached its end with the budget
    assert all(np.isfinite(p.validation_mae) for p in curve)  # the hold-out came from the rows, by simulation


@pytest.mark.integration  # trains a network
def test_recipe_sets_the_rate_in_pieces_of_steps_and_never_waits_on_a_step(rows):
    """Touching the model each step copies the whole training state on JAX (a third of a GPU step)."""
    every = model_module.RECIPE_EVERY_STEPS
    config = ThreeBodyTrainingConfig(**TINY, epochs=2, batch_size=16, learning_rate=1e-3)
    steps_per_epoch = -(-len(rows.inputs) // config.batch_size)
    recipe = model_module._recipe_callback(config, steps_per_epoch, None)
    rates: list[float] = []
    probe = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: rates.append(float(probe.model.optimizer.learning_rate))
    )
    network = build_network(config, rows.inputs, rows.targets)
    network.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mae")
    network.fit(rows.inputs, rows.targets, epochs=2, batch_size=16, verbose=0, callbacks=[recipe, probe])
    assert len(rates) == 2 * steps_per_epoch > 4 * every
    pieces = [rates[i : i + every] for i in range(0, len(rates), every)]
    assert all(len(set(piece)) == 1 for piece in pieces) and len(set(rates)) <= len(rates) / 8  # set once a piece
    starts = [piece[0] for piece in pieces]
    assert starts[0] == pytest.approx(config.learning_rate) and all(np.diff(starts) < 0)  # the cosine, in steps
    assert starts[-1] < 0.05 * config.learning_rate
    # No per-step end hook: Keras then dispatches step ends without waiting for each step's result.
    assert type(recipe).on_train_batch_end is keras.callbacks.Callback.on_train_batch_end
    # `train` runs that many steps per Keras call, and none is lost at an epoch's uneven end.
    trained = train(rows.inputs, rows.targets, config)
    (network,) = (layer for layer in trained.layers if isinstance(layer, keras.Sequential))
    assert network.steps_per_execution == every and steps_per_epoch % every
    assert int(network.optimizer.iterations) == 2 * steps_per_epoch


def test_presets_carry_the_pipeline_parameters_and_valid_training_configs():
    for name, params in PRESETS.items():
        assert {
            "simulations",
            "t_max",
            "validation_fraction",
            "epochs",
            "batch_size",
            "learning_rate",
            "time_budget_s",
            "patience",
            "holdout_fraction",
            "time_stride",
            "shard_size",
            "max_mae",
        } <= set(params), name
        config = training_config(params, seed=7)
        config.validate()
        assert (config.seed, config.hidden_layers, config.units) == (7, 10, 128)  # Breen's network everywhere
        assert config.epochs == params["epochs"] and config.learning_rate == params["learning_rate"]
    paper = preset("paper")
    assert (paper["simulations"], paper["t_max"], paper["batch_size"], paper["learning_rate"]) == (
        10_000,
        10.0,
        5000,
        5e-4,
    )
    assert paper["time_stride"] == 1  # Breen's rows: every output time
    assert paper["time_budget_s"] == 0  # runs to its epochs (or patience) on a GPU node, unchanged
    assert preset("local")["max_mae"] > preset("standard")["max_mae"]
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
