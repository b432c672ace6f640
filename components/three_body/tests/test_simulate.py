"""Tests of the three-body simulator and its command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from components.three_body import simulate as sim
from components.three_body.__main__ import CSV_HEADER, main

REPO_ROOT = Path(__file__).resolve().parents[3]
ACCURACY_SEED = 7


@pytest.fixture(scope="module")
def random_runs() -> tuple[np.ndarray, sim.SimulationResult]:
    """Five of Breen's random initial conditions integrated to t = 3.9, shared by several tests."""
    x2 = sim.sample_initial_x2(5, ACCURACY_SEED)
    return x2, sim.simulate(x2)


# Sampling and input validation


def test_samples_lie_in_breen_region_and_are_seeded() -> None:
    x2 = sim.sample_initial_x2(3000, seed=1)
    assert x2.shape == (3000, 2)
    sim.validate_x2(x2)
    assert x2[:, 0].min() < -0.49 and x2[:, 0].max() > -0.01
    assert x2[:, 1].min() < 0.01 and np.hypot(*x2.T).max() > 0.99
    np.testing.assert_array_equal(x2, sim.sample_initial_x2(3000, seed=1))
    np.testing.assert_array_equal(x2[:10], sim.sample_initial_x2(10, seed=1))
    assert not np.array_equal(x2[:10], sim.sample_initial_x2(10, seed=2))
    assert sim.sample_initial_x2(0, seed=1).shape == (0, 2)
    with pytest.raises(ValueError, match="n must be"):
        sim.sample_initial_x2(-1, seed=1)


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ((0.1, 0.5), "outside the region"),
        ((-0.6, 0.5), "outside the region"),
        ((-0.2, -0.1), "outside the region"),
        ((-0.2, 1.1), "outside the region"),
        ((-0.45, 0.95), "outside the region"),  # inside the box but |x2| > 1
        ((np.nan, 0.5), "not finite"),
        ((-0.2, np.inf), "not finite"),
    ],
)
def test_validate_x2_names_offending_row(bad_row: tuple[float, float], message: str) -> None:
    x2 = np.array([[-0.2, 0.5], [-0.3, 0.3], bad_row])
    with pytest.raises(sim.InvalidX2Error, match=f"row 2 .*{message}") as error:
        sim.validate_x2(x2)
    assert error.value.row == 2


def test_validate_x2_accepts_region_corners_and_rejects_bad_shape() -> None:
    sim.validate_x2(np.array([[-0.5, 0.0], [0.0, 1.0], [0.0, 0.0], [-0.5, np.sqrt(0.75)]]))
    with pytest.raises(ValueError, match="shape"):
        sim.validate_x2(np.array([-0.2, 0.5]))
    with pytest.raises(ValueError, match="outside"):
        sim.simulate(np.array([[-0.2, 0.5], [0.5, 0.5]]), t_max=0.1)


def test_time_grid_sizes() -> None:
    grid = sim.time_grid(3.9)
    assert len(grid) == 1000 and grid[-1] == 999 / 256
    assert len(sim.time_grid(10.0)) == 2561 and sim.time_grid(10.0)[-1] == 10.0
    assert len(sim.time_grid(1.0)) == 257
    np.testing.assert_array_equal(np.diff(grid), 1 / 256)


@pytest.mark.parametrize("t_max", [0.0, -1.0, 10.01, np.nan, np.inf])
def test_time_grid_rejects_bad_t_max(t_max: float) -> None:
    with pytest.raises(ValueError, match="t_max"):
        sim.time_grid(t_max)


# Physics and accuracy


def test_energy_helpers_agree() -> None:
    positions = np.array([[1.0, 0.0], [-0.2, 0.5], [-0.8, -0.5]])
    velocities = np.array([[0.1, -0.3], [0.2, 0.4], [-0.3, -0.1]])
    potential = -sum(1 / np.linalg.norm(positions[i] - positions[j]) for i, j in ((0, 1), (0, 2), (1, 2)))
    expected = 0.5 * np.sum(velocities**2) + potential
    assert sim.energy(positions, velocities) == pytest.approx(expected, rel=1e-14)
    state = np.concatenate([sim._SEPARATIONS @ positions[:2].ravel(), sim._SEPARATIONS @ velocities[:2].ravel()])
    assert sim._state_energy(state[:, None])[0] == pytest.approx(expected, rel=1e-14)


def test_independent_check_confirms_kept_runs(random_runs: tuple[np.ndarray, sim.SimulationResult]) -> None:
    _, result = random_runs
    kept = np.flatnonzero(result.converged)
    assert len(kept) >= 3, "too few converged runs to test accuracy"
    errors = sim.independent_check(result, kept[:2])
    assert errors.shape == (2,)
    assert (errors <= sim.DEFAULT_MAX_DIVERGENCE).all(), errors
    # The twin-run difference bounds the error of the (tighter) returned run; scipy's reference,
    # stepping in physical time at 3e-14, carries an error of the same order as that run's own.
    assert (errors <= 2 * result.divergence[kept[:2]]).all(), (errors, result.divergence[kept[:2]])


def test_independent_check_refuses_dropped_runs() -> None:
    result = sim.simulate(np.array([[-0.2, 0.8], [-0.3, 0.0]]), t_max=0.5)
    assert result.converged.tolist() == [True, False]
    with pytest.raises(ValueError, match="kept runs only"):
        sim.independent_check(result, np.array([0, 1]))


def test_result_is_consistent(random_runs: tuple[np.ndarray, sim.SimulationResult]) -> None:
    x2, result = random_runs
    n_times = len(sim.time_grid(3.9))
    assert result.positions.shape == (5, n_times, 3, 2) and result.positions.dtype == np.float64
    np.testing.assert_array_equal(result.times, sim.time_grid(3.9))
    good = result.positions[result.converged]
    assert np.isfinite(good).all()
    np.testing.assert_array_equal(good[:, 0, 0], np.tile(sim.X1, (len(good), 1)))
    np.testing.assert_array_equal(good[:, 0, 1], x2[result.converged])
    np.testing.assert_allclose(good.sum(axis=2), 0.0, atol=1e-13)
    np.testing.assert_array_equal(good[:, :, 2], -good[:, :, 0] - good[:, :, 1])
    assert (result.energy_error[result.converged] < 1e-6).all()
    assert (result.divergence[result.converged] <= sim.DEFAULT_MAX_DIVERGENCE).all()
    assert (result.phase_distance[result.converged] < sim.BREEN_MAX_PHASE_DISTANCE).all()
    assert result.breen_converged[result.converged].all()
    np.testing.assert_array_equal(result.x2, x2)
    np.testing.assert_array_equal(result.dropped_x2, x2[~result.converged])
    assert (result.steps > 100).all()
    assert np.isnan(result.positions[~result.converged]).all()
    assert ((result.status == sim.Status.CONVERGED) == result.converged).all()


def test_quiet_orbit_is_interpolated_accurately_between_long_steps() -> None:
    x2 = np.array([[-0.2, 0.8]])
    result = sim.simulate(x2, t_max=1.0)
    assert result.converged[0]
    assert result.steps[0] < 50  # each step spans several grid points, so the dense output is exercised
    assert result.energy_error[0] < 1e-9
    error = sim.position_error(result.positions[0], sim.reference_solution(x2[0], 1.0))
    assert error.max() < 1e-9


def test_singular_and_colliding_starts_are_flagged() -> None:
    # (-0.5, 0) puts bodies 2 and 3 on the same point; (-0.3, 0) is collinear and collides head on.
    x2 = np.array([[-0.5, 0.0], [-0.3, 0.0], [-0.2, 0.8]])
    result = sim.simulate(x2, t_max=1.0)
    assert result.status[0] == sim.Status.SINGULAR_START
    assert result.status[1] in (sim.Status.STEP_TOO_SMALL, sim.Status.ENERGY_DRIFT)
    assert result.converged.tolist() == [False, False, True]
    without_energy_check = sim.simulate(x2[1:2], t_max=1.0, max_energy_error=np.inf)
    assert without_energy_check.status[0] == sim.Status.STEP_TOO_SMALL
    assert np.isnan(result.positions[:2]).all()
    assert np.isfinite(result.positions[2]).all()


def test_step_limit_energy_drift_and_divergence_mark_failures() -> None:
    x2 = np.array([[-0.2, 0.8], [-0.3, 0.5]])
    limited = sim.simulate(x2, t_max=1.0, max_steps=5)
    assert (limited.status == sim.Status.TOO_MANY_STEPS).all()
    assert np.isnan(limited.positions).all()
    drifting = sim.simulate(x2, t_max=1.0, max_energy_error=1e-15)
    assert (drifting.status == sim.Status.ENERGY_DRIFT).all()
    strict = sim.simulate(x2, t_max=1.0, max_divergence=0.0)
    assert (strict.status == sim.Status.DIVERGED).all()
    assert (strict.divergence > 0).all() and not strict.converged.any()


# Convergence criterion


def test_close_encounter_the_median_criterion_dropped_is_kept() -> None:
    # Bodies 2 and 3 pass within 8e-5 of each other near t = 0.97. In body coordinates
    # that pass loses digits: the old run (rtol 1e-11, median criterion) drifted in
    # energy by more than 1e-5 and was dropped, and even scipy there stalls at a
    # rounding floor however tight its tolerance. The separation state keeps the run,
    # and the tighter scipy reference agrees with what is kept.
    x2 = np.array([[-0.498171, 0.604937]])
    result = sim.simulate(x2, t_max=1.0)
    assert result.converged[0], sim.Status(result.status[0]).name
    assert result.divergence[0] < 1e-6
    positions = result.positions[0]
    closest = np.min(np.linalg.norm(positions[:, 2] - positions[:, 1], axis=-1))
    assert closest < 1e-2  # a close encounter even on the coarse output grid
    error = sim.independent_check(result, np.array([0]))[0]
    assert error < 1e-8
    reference = sim.reference_solution(x2[0], 1.0, sim.REFERENCE_RTOL, sim.REFERENCE_RTOL, separations=True)
    in_body_coordinates = sim.reference_solution(x2[0], 1.0, 1e-13, 1e-13)
    assert sim.position_error(in_body_coordinates, reference).max() > 100 * error


def test_chaotic_run_whose_twins_disagree_is_still_dropped() -> None:
    # Both runs finish and Breen's loose criterion accepts them, but they differ by
    # ~8e-4 somewhere before t = 2.5, eight times the bound: dropped.
    x2 = np.array([[-0.433547, 0.132709]])
    result = sim.simulate(x2, t_max=2.5)
    assert result.status[0] == sim.Status.DIVERGED
    assert result.divergence[0] > 3 * sim.DEFAULT_MAX_DIVERGENCE
    assert result.breen_converged[0]
    assert np.isnan(result.positions[0]).all()
    np.testing.assert_array_equal(result.dropped_x2, x2)


def test_divergence_is_the_maximum_over_the_run() -> None:
    x2 = np.array([[-0.2, 0.8]])
    loose = sim.simulate(x2, t_max=1.0, rtol=1e-10)
    strict = sim.simulate(x2, t_max=1.0, rtol=1e-10, max_divergence=0.9 * loose.divergence[0])
    assert loose.converged[0] and strict.status[0] == sim.Status.DIVERGED
    # Twin runs differ most where errors have accumulated: far above their median.
    reference = sim.reference_solution(x2[0], 1.0, rtol=1e-13, atol=1e-13, separations=True)
    error = sim.position_error(loose.positions[0], reference)
    assert error.max() <= loose.divergence[0]
    assert loose.divergence[0] > 2 * np.median(error)


def test_the_fictitious_time_derivative_is_the_physical_one_scaled_by_dt_ds() -> None:
    state = sim._initial_state(np.array([[-0.3, 0.4], [-0.1, 0.9]]))
    state[6:12] = np.array([[0.1, -0.2], [0.3, 0.0], [0.0, 0.5], [-0.4, 0.1], [0.2, 0.2], [0.1, -0.3]])
    out = np.empty_like(state)
    sim._derivative(state, out)
    r = np.linalg.norm(state[:6].reshape(3, 2, -1), axis=1)
    np.testing.assert_allclose(out[sim._TIME], 1.0 / np.sum(1.0 / r, axis=0), rtol=1e-15)
    for column in range(2):
        physical = sim._separation_derivative(0.0, state[: sim._N_PHASE, column])
        np.testing.assert_allclose(out[: sim._N_PHASE, column] / out[sim._TIME, column], physical, rtol=1e-13)


def test_interpolant_in_powers_of_x_matches_scipys_nested_form() -> None:
    rng = np.random.default_rng(0)
    coeffs, x = rng.normal(size=(7, 5)), rng.uniform(size=5)
    nested = np.zeros(5)
    for i, c in enumerate(coeffs[::-1]):
        nested += c
        nested *= x if i % 2 == 0 else 1.0 - x
    terms, slopes = sim._basis(x)
    np.testing.assert_allclose(np.sum(coeffs * terms, axis=0), nested, rtol=1e-13, atol=1e-15)
    (above, _), (below, _) = sim._basis(x + 1e-6), sim._basis(x - 1e-6)
    central = np.sum(coeffs * (above - below), axis=0) / 2e-6
    np.testing.assert_allclose(np.sum(coeffs * slopes, axis=0), central, rtol=1e-6, atol=1e-8)


def test_output_times_are_found_inside_a_step() -> None:
    # A clock running as t = s + s^2 / 4 over a step of s in [0, 1]: the interpolant of a quadratic is exact.
    t_old, t_new = np.array([2.0]), np.array([3.25])
    coeffs = np.zeros((7, 1))
    coeffs[0] = t_new - t_old  # x (1 + x/4) in the nested form: c0 = 1.25, c1 = -0.25
    coeffs[1] = -0.25
    targets = np.array([2.5])
    x = sim._fractions_at_times(coeffs, t_old, t_new, targets)
    np.testing.assert_allclose(x, -2.0 + np.sqrt(4.0 + 2.0), rtol=1e-14)  # s + s^2/4 = 0.5


def test_phase_distance_is_the_rms_over_body_coordinates() -> None:
    a = np.zeros((12, 1))
    a[:6, 0] = sim._SEPARATIONS @ np.array([1.0, 0.0, -0.2, 0.5])
    b = a.copy()
    b[6:, 0] = sim._SEPARATIONS @ np.array([0.0, 0.0, 0.3, 0.0])  # v2 = (0.3, 0), v1 = 0, v3 = -v2
    assert sim._phase_distance(a, b)[0] == pytest.approx(np.sqrt(2 * 0.3**2 / 12), rel=1e-14)
    assert sim._phase_distance(a, a)[0] == 0.0


def test_default_tolerance_tightens_for_the_long_horizon() -> None:
    assert sim.default_rtol(3.9) == sim.DEFAULT_RTOL
    assert sim.default_rtol(10.0) == sim.LONG_HORIZON_RTOL < sim.DEFAULT_RTOL


def test_progress_reaches_total() -> None:
    calls: list[tuple[int, int]] = []
    sim.simulate(sim.sample_initial_x2(3, seed=3), t_max=1.0, progress=lambda done, total: calls.append((done, total)))
    done = [d for d, _ in calls]
    assert len(calls) > 1 and done == sorted(done)
    assert calls[-1][0] == calls[-1][1]


# Command line


def test_cli_writes_csv(tmp_path: Path) -> None:
    out = tmp_path / "orbit.csv"
    assert main(["simulate", "--x2", "-0.2", "0.8", "--t-max", "0.5", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == CSV_HEADER and len(lines) == 1 + 129
    first = np.array(lines[1].split(","), dtype=float)
    np.testing.assert_array_equal(first, [0.0, 1.0, 0.0, -0.2, 0.8, -0.8, -0.8])
    assert [p.name for p in tmp_path.iterdir()] == ["orbit.csv"]


def test_cli_writes_npy_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "orbit.npy"
    assert main(["simulate", "--x2", "-0.2", "0.8", "--t-max", "0.5", "--out", str(out)]) == 0
    rows = np.load(out)
    assert rows.shape == (129, 7)
    np.testing.assert_array_equal(rows[:, 0], sim.time_grid(0.5))
    assert main(["simulate", "--x2", "-0.2", "0.8", "--t-max", "0.5"]) == 0
    printed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",", skiprows=1)
    np.testing.assert_array_equal(printed, rows)


def test_cli_x2_file_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "x2.txt"
    source.write_text("# Breen initial conditions\n-0.2 0.8\n\n-0.3 0.0  # collides\n-0.1 0.5\n")
    out = tmp_path / "batch.npy"
    assert main(["simulate", "--x2-file", str(source), "--t-max", "0.5", "--out", str(out)]) == 0
    rows = np.load(out)
    assert rows.shape == (3, 129, 7)
    assert np.isfinite(rows[[0, 2]]).all() and np.isnan(rows[1]).all()
    assert "simulations=3 converged=2 failed=1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--x2", "0.2", "0.5"], "outside the region"),
        (["--x2", "-0.2", "0.5", "--t-max", "0"], "t_max"),
        (["--x2", "-0.2", "0.5", "--t-max", "12"], "t_max"),
        (["--x2-file", "{bad_file}"], "line 2"),
        (["--x2-file", "{outside_file}"], "line 3: x2 = \\(0.3, 0.5\\) is outside"),
        (["--x2-file", "{missing_file}"], "No such file"),
        (["--x2", "-0.2", "0.5", "--x2-file", "{bad_file}"], "not allowed with"),
        ([], "one of the arguments --x2 --x2-file is required"),
    ],
)
def test_cli_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    (tmp_path / "bad.txt").write_text("-0.2 0.5\n-0.2 0.5 0.1\n")
    (tmp_path / "outside.txt").write_text("-0.2 0.5\n# comment\n0.3 0.5\n")
    files = {name: str(tmp_path / f"{name.split('_')[0]}.txt") for name in ("bad_file", "outside_file", "missing_file")}
    out = tmp_path / "out.npy"
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", *(a.format(**files) for a in arguments), "--out", str(out)])
    assert exit_info.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and re.search(message, error_lines[0])
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "outside.txt"]


def test_cli_error_message_and_exit_code_from_shell(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.three_body",
            "simulate",
            "--x2",
            "-0.2",
            "0.5",
            "--t-max",
            "-1",
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 2
    assert "error: --t-max: t_max must be in (0, 10], got -1.0" in process.stderr
    assert not out.exists()
