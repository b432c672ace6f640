"""Drift checks between a reference (training) dataset and current (serving) data.

Tests run at the unit that was sampled: one three-body simulation gives ~1,000 rows with
the same initial condition, so its rows are not independent samples and row-level tests
would find "drift" between any two sets of simulations. Features constant within a unit
are tested on one row per unit; features that vary within a unit (the time t) by tests
that permute whole units. All tests form one family, Holm-corrected, so the verdict's
false-alarm rate is at most alpha; effect sizes (Wasserstein, PSI, JS) are descriptive.

The joint checks exist because the article's failure mode has near-identical marginals
(equal pairs [i, i] vs independent pairs) and differs only in how the features move together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats
from scipy.spatial.distance import cdist, jensenshannon

MIN_ROWS = 2
PSI_EPSILON = 1e-4
"""Stands in for an empty bin's share so PSI stays finite (the usual credit-scoring fix)."""
STD_FLOOR = 1e-3
"""Floor for a reference std used as a scale, as Evidently does, so constant features stay finite."""
ECDF_GRID = 256
"""Points at which a within-unit feature's distributions are compared (pooled quantiles)."""


@dataclass(frozen=True)
class DriftThresholds:
    """Limits for each check; defaults follow the conventions of common drift tools.

    - ``alpha`` 0.05 is the family-wise false-alarm rate of the verdict: every test of one
      report (KS and range per feature, correlation per pair, energy for all) is in one
      Holm family, so identical distributions raise an alarm in at most 5% of reports.
    - ``range_coverage`` 0.99 and ``correlation_diff`` 0.2 are practical limits a
      significant range or correlation test must also exceed to count: at least 99% of
      current rows inside the reference [min, max] (a model extrapolates outside it), and
      the usual "weak correlation" boundary for a change of Spearman correlation.
    - ``psi`` 0.2 (credit scoring: >= 0.2 significant; Lewis / Siddiqi use 0.25),
      ``js_distance`` 0.1 and ``wasserstein_normed`` 0.1 (Evidently's defaults) only label
      an effect size "large": they do not vote, because on a few dozen units identical
      distributions exceed them by sampling noise alone.
    - ``n_bins`` 10: reference deciles, the usual PSI binning.
    - ``energy_sample_size`` / ``n_permutations``: units per side and permutations of the
      permutation tests (energy distance, and the tests of within-unit features).
    """

    alpha: float = 0.05
    psi: float = 0.2
    js_distance: float = 0.1
    wasserstein_normed: float = 0.1
    range_coverage: float = 0.99
    correlation_diff: float = 0.2
    n_bins: int = 10
    energy_sample_size: int = 1000
    n_permutations: int = 1000

    def __post_init__(self) -> None:
        limits: dict[str, tuple[float, float, bool]] = {
            # field: (low, high, high is allowed); low is always excluded
            "alpha": (0.0, 1.0, False),
            "psi": (0.0, math.inf, False),
            "js_distance": (0.0, 1.0, True),
            "wasserstein_normed": (0.0, math.inf, False),
            "range_coverage": (0.0, 1.0, True),
            "correlation_diff": (0.0, 2.0, True),
        }
        for name, (low, high, high_ok) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"DriftThresholds.{name} must be a number, got {value!r}")
            inside = low < value < high or (high_ok and value == high)
            if not inside:
                bracket = "]" if high_ok else ")"
                raise ValueError(f"DriftThresholds.{name}={value!r} is outside ({low}, {high}{bracket}")
        minimums = {"n_bins": 2, "energy_sample_size": 10, "n_permutations": 19}
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"DriftThresholds.{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Check:
    """One measured quantity and its verdict, with a sentence a person can act on.

    A voting check is a test of the Holm family: ``value`` is its Holm-adjusted p-value and
    ``threshold`` alpha. A descriptive check (``votes`` False) is an effect size with the
    conventional limit above which it is called large; it never changes the verdict.
    """

    name: str
    features: tuple[str, ...]
    value: float
    threshold: float
    votes: bool
    passed: bool
    condition: str
    reason: str
    details: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": list(self.features),
            "value": float(self.value),
            "threshold": float(self.threshold),
            "votes": self.votes,
            "passed": self.passed,
            "condition": self.condition,
            "reason": self.reason,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class DriftReport:
    """All checks of one comparison; drift means at least one voting check failed."""

    feature_names: tuple[str, ...]
    n_reference: int
    n_current: int
    n_reference_units: int
    n_current_units: int
    unit_name: str
    thresholds: DriftThresholds
    checks: list[Check]
    notes: tuple[str, ...] = ()

    @property
    def tests(self) -> list[Check]:
        return [c for c in self.checks if c.votes]

    @property
    def drift_detected(self) -> bool:
        return any(not c.passed for c in self.tests)

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.tests if not c.passed]

    @property
    def error_control(self) -> str:
        return (
            f"{len(self.tests)} tests at family-wise alpha {self.thresholds.alpha:g} (Holm), "
            f"each on {self.unit_name}s, so the chance of a false alarm on identical "
            f"distributions is at most {self.thresholds.alpha:g}; Wasserstein, PSI and JS are "
            "descriptive and do not vote"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, so it can go into a model card or KFP metrics as is."""
        return {
            "drift_detected": self.drift_detected,
            "reasons": self.reasons,
            "error_control": self.error_control,
            "feature_names": list(self.feature_names),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "n_reference_units": self.n_reference_units,
            "n_current_units": self.n_current_units,
            "unit_name": self.unit_name,
            "thresholds": asdict(self.thresholds),
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
        }


def validate_inputs(
    reference: ArrayLike, current: ArrayLike, feature_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Fail loudly on shapes or values that would make every statistic meaningless."""
    names = tuple(feature_names)
    if isinstance(feature_names, str) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"feature_names must be a sequence of non-empty strings, got {feature_names!r}")
    if not names:
        raise ValueError("feature_names is empty: there is nothing to compare")
    if len(set(names)) != len(names):
        raise ValueError(f"feature_names must be unique, got {list(names)}")
    arrays = []
    for label, data in (("reference", reference), ("current", current)):
        try:
            array = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{label} must be numeric: {exc}") from exc
        if array.ndim != 2:
            raise ValueError(f"{label} must be 2-D (rows, features), got shape {array.shape}")
        if array.shape[1] != len(names):
            raise ValueError(f"{label} has {array.shape[1]} feature columns but {len(names)} feature_names were given")
        if array.shape[0] < MIN_ROWS:
            raise ValueError(f"{label} needs at least {MIN_ROWS} rows, got {array.shape[0]}")
        bad = np.asarray(~np.isfinite(array).all(axis=0))
        if bad.any():
            raise ValueError(f"{label} contains NaN or inf in feature(s) {[n for n, b in zip(names, bad) if b]}")
        arrays.append(array)
    return arrays[0], arrays[1], names


def load_dataset(path: Path, unit_column: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The `inputs` array of an .npz dataset and, when named, its per-row unit ids."""
    with np.load(path) as data:
        if unit_column and unit_column not in data.files:
            raise ValueError(f"{path} has no unit column {unit_column!r}; its arrays are {sorted(data.files)}")
        return data["inputs"], (data[unit_column] if unit_column else None)


def _unit_index(units: ArrayLike, n_rows: int, label: str) -> np.ndarray:
    """Dense 0..k-1 unit number per row."""
    ids = np.asarray(units)
    if ids.shape != (n_rows,):
        raise ValueError(f"{label} units must be 1-D with one id per row ({n_rows}), got shape {ids.shape}")
    unique, inverse = np.unique(ids, return_inverse=True)
    if unique.size < MIN_ROWS:
        raise ValueError(f"{label} needs at least {MIN_ROWS} units, got {unique.size}")
    return inverse.reshape(-1)


@dataclass(frozen=True)
class _Sample:
    """One side of the comparison, grouped into the units that were sampled."""

    rows: np.ndarray  # (rows, features)
    unit: np.ndarray  # (rows,) dense unit number
    first_rows: np.ndarray  # (units,) index of each unit's first row

    @property
    def n_units(self) -> int:
        return self.first_rows.size

    def constant_within_units(self) -> np.ndarray:
        """Per feature: does every row equal its unit's first row?"""
        return (self.rows == self.rows[self.first_rows][self.unit]).all(axis=0)


def _sample(rows: np.ndarray, units: ArrayLike | None, label: str) -> _Sample:
    unit = np.arange(rows.shape[0]) if units is None else _unit_index(units, rows.shape[0], label)
    first_rows = np.full(unit.max() + 1, rows.shape[0])
    np.minimum.at(first_rows, unit, np.arange(rows.shape[0]))
    return _Sample(rows, unit, first_rows)


@dataclass(frozen=True)
class _Test:
    """A test before the Holm correction; ``gate`` is an effect size it must also exceed."""

    name: str
    features: tuple[str, ...]
    p_value: float
    statement: str
    details: Mapping[str, float]
    gate: tuple[str, float, float, bool] | None = None  # (label, value, limit, higher_is_worse)


def compare(
    reference: ArrayLike,
    current: ArrayLike,
    feature_names: Sequence[str],
    thresholds: DriftThresholds = DriftThresholds(),
    seed: int = 0,
    units: tuple[ArrayLike, ArrayLike] | None = None,
    unit_name: str = "row",
) -> DriftReport:
    """Run every check of ``current`` against ``reference``.

    ``units`` (one id array per side) names the sampled unit of each row, e.g. its
    simulation; without it rows are taken as independent samples.
    """
    ref_rows, cur_rows, names = validate_inputs(reference, current, feature_names)
    ref_units, cur_units = (None, None) if units is None else units
    ref = _sample(ref_rows, ref_units, "reference")
    cur = _sample(cur_rows, cur_units, "current")
    per_unit = ref.constant_within_units() & cur.constant_within_units()
    unit_features = [j for j in range(len(names)) if per_unit[j]]
    ref_table, cur_table = ref_rows[ref.first_rows], cur_rows[cur.first_rows]
    rng = np.random.default_rng(seed)

    tests: list[_Test] = []
    descriptive: list[Check] = []
    notes: list[str] = []
    permuted = len(unit_features) >= 2
    for j, name in enumerate(names):
        if per_unit[j]:
            tests += _unit_feature_tests(name, ref_table[:, j], cur_table[:, j], cur_rows[:, j], thresholds, unit_name)
            descriptive += _effect_sizes(name, ref_table[:, j], cur_table[:, j], thresholds)
        elif _same_in_every_unit(ref, cur, j):
            notes.append(
                f"{name} takes the same {ref.rows.shape[0] // ref.n_units} values in every {unit_name} on both "
                "sides (a fixed grid), so the sides cannot differ in it: not tested, leaving alpha to the others"
            )
        else:
            tests += _varying_feature_tests(name, ref, cur, j, thresholds, rng, unit_name)
            descriptive += _effect_sizes(name, ref_rows[:, j], cur_rows[:, j], thresholds)
            permuted = True
    if len(unit_features) >= 2:
        columns = np.array(unit_features)
        unit_names = tuple(names[j] for j in columns)
        ref_columns, cur_columns = ref_table[:, columns], cur_table[:, columns]
        tests += _correlation_tests(unit_names, ref_columns, cur_columns, thresholds, unit_name)
        tests.append(_energy_test(unit_names, ref_columns, cur_columns, thresholds, rng, unit_name))

    smallest_level = thresholds.alpha / max(len(tests), 1)
    if permuted and 1.0 / (thresholds.n_permutations + 1) > smallest_level:
        raise ValueError(
            f"n_permutations={thresholds.n_permutations} cannot give a p-value below the "
            f"smallest Holm level {smallest_level:.3g} of {len(tests)} tests; "
            f"use at least {math.ceil(1.0 / smallest_level)}"
        )
    checks = _holm_checks(tests, thresholds.alpha) + descriptive
    return DriftReport(
        names,
        ref_rows.shape[0],
        cur_rows.shape[0],
        ref.n_units,
        cur.n_units,
        unit_name,
        thresholds,
        checks,
        tuple(notes),
    )


def holm_adjusted(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: rejecting those <= alpha keeps the family-wise rate <= alpha."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (p.size - np.arange(p.size))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def _holm_checks(tests: list[_Test], alpha: float) -> list[Check]:
    adjusted = holm_adjusted([t.p_value for t in tests])
    checks = []
    for test, p_holm in zip(tests, adjusted):
        significant = bool(p_holm <= alpha)
        condition = f"Holm p <= {alpha:g}"
        reason = (
            f"{','.join(test.features)}: {test.statement}, p-value {test.p_value:.3g}, "
            f"Holm-adjusted {p_holm:.3g} {'<=' if significant else '>'} alpha {alpha:g}"
        )
        failed = significant
        if test.gate is not None:
            label, value, limit, higher_is_worse = test.gate
            large = value >= limit if higher_is_worse else value < limit
            condition += f" and {label} {'>=' if higher_is_worse else '<'} {limit:g}"
            failed = significant and large
            if significant:
                op = (">=" if large else "<") if higher_is_worse else ("<" if large else ">=")
                reason += f"; {label} {value:.3g} {op} {limit:g}"
                reason += "" if large else ", within the practical limit, so not counted"
        details = {**test.details, "p_value": test.p_value, "holm_p_value": float(p_holm)}
        checks.append(
            Check(test.name, test.features, float(p_holm), alpha, True, not failed, condition, reason, details)
        )
    return checks


def _unit_feature_tests(
    name: str, ref: np.ndarray, cur: np.ndarray, cur_rows: np.ndarray, t: DriftThresholds, unit_name: str
) -> list[_Test]:
    """KS and range tests on one value per unit, the sample size the data really has."""
    features = (name,)
    ks = stats.ks_2samp(ref, cur)
    low, high = float(ref.min()), float(ref.max())
    outside_units = int(np.sum((cur < low) | (cur > high)))
    coverage = float(np.mean((cur_rows >= low) & (cur_rows <= high)))
    sizes = f"{cur.size} current vs {ref.size} reference {unit_name}s"
    return [
        _Test(
            "ks_pvalue",
            features,
            float(ks.pvalue),
            f"KS statistic {ks.statistic:.3g} on {sizes}",
            {"statistic": float(ks.statistic)},
        ),
        _Test(
            "range_coverage",
            features,
            range_exceedance_pvalue(outside_units, ref.size, cur.size),
            f"{100 * (1 - coverage):.3g}% of current rows lie outside the reference range "
            f"[{low:.6g}, {high:.6g}] ({outside_units} of {cur.size} current {unit_name}s)",
            {"reference_min": low, "reference_max": high, "coverage": coverage, "units_outside": outside_units},
            ("coverage", coverage, t.range_coverage, False),
        ),
    ]


def range_exceedance_pvalue(k: int, n_reference: int, n_current: int) -> float:
    """P(at least k of the current values fall outside the reference [min, max]) if both are exchangeable.

    Among N = n + m pooled values in random order, k current values lie outside the
    reference range with probability (k + 1) C(N - k - 2, n - 2) / C(N, n): the reference
    values span N - k consecutive places, their first and last at the ends, and the k
    others split k + 1 ways between below and above. Ties only lower the count, so the
    test stays valid (conservative) for discrete data.
    """
    n, m = n_reference, n_current
    j = np.arange(k, m + 1)
    log_p = np.log(j + 1) + special.gammaln(n + m - j - 1) - special.gammaln(n - 1) - special.gammaln(m - j + 1)
    log_p -= special.gammaln(n + m + 1) - special.gammaln(n + 1) - special.gammaln(m + 1)
    return float(min(1.0, np.exp(log_p).sum()))


def _same_in_every_unit(ref: _Sample, cur: _Sample, j: int) -> bool:
    """True when every unit holds the same values of feature j, like a fixed time grid.

    Then no relabelling of units can change a statistic, so a test could never reject:
    leaving it out of the Holm family (Tarone's argument) gives its share of alpha to
    tests that can.
    """
    values = np.concatenate([ref.rows[:, j], cur.rows[:, j]])
    unit = np.concatenate([ref.unit, cur.unit + ref.n_units])
    n_units = ref.n_units + cur.n_units
    if values.size % n_units or np.any(np.bincount(unit) != values.size // n_units):
        return False
    by_unit = values[np.lexsort((values, unit))].reshape(n_units, -1)
    return bool((by_unit == by_unit[0]).all())


def _varying_feature_tests(
    name: str, ref: _Sample, cur: _Sample, j: int, t: DriftThresholds, rng: np.random.Generator, unit_name: str
) -> list[_Test]:
    """KS and range statistics on all rows, with p-values from permuting whole units.

    Permuting units (not rows) keeps each unit's rows together, as they were sampled, so
    the p-value is valid however strongly rows within a unit are correlated.
    """
    features = (name,)
    values = np.concatenate([ref.rows[:, j], cur.rows[:, j]])
    unit = np.concatenate([ref.unit, cur.unit + ref.n_units])
    n_units = ref.n_units + cur.n_units
    grid = np.unique(np.quantile(values, np.linspace(0.0, 1.0, ECDF_GRID)))
    bins = np.searchsorted(grid, values, side="right")  # rows <= grid[i] have bin <= i
    counts = np.bincount(unit * (grid.size + 1) + bins, minlength=n_units * (grid.size + 1))
    cumulative = np.cumsum(counts.reshape(n_units, grid.size + 1), axis=1)[:, :-1]  # rows <= each grid point
    sizes = cumulative[:, -1] + counts.reshape(n_units, grid.size + 1)[:, -1]
    mins = np.full(n_units, np.inf)
    maxs = np.full(n_units, -np.inf)
    np.minimum.at(mins, unit, values)
    np.maximum.at(maxs, unit, values)

    observed = np.r_[np.ones(ref.n_units), np.zeros(cur.n_units)]
    labels = np.vstack([observed, rng.permuted(np.tile(observed, (t.n_permutations, 1)), axis=1)])
    in_ref = labels.astype(bool)
    ecdf_ref = (labels @ cumulative) / (labels @ sizes)[:, None]
    ecdf_cur = ((1 - labels) @ cumulative) / ((1 - labels) @ sizes)[:, None]
    ks = np.abs(ecdf_ref - ecdf_cur).max(axis=1)
    low = np.where(in_ref, mins, np.inf).min(axis=1)
    high = np.where(in_ref, maxs, -np.inf).max(axis=1)
    outside = (~in_ref & ((mins < low[:, None]) | (maxs > high[:, None]))).sum(axis=1)

    cur_values = cur.rows[:, j]
    coverage = float(np.mean((cur_values >= low[0]) & (cur_values <= high[0])))
    how = f"p-value from {t.n_permutations} permutations of whole {unit_name}s"
    return [
        _Test(
            "ks_pvalue",
            features,
            _permutation_pvalue(ks),
            f"KS statistic {ks[0]:.3g} on all rows of {cur.n_units} current vs {ref.n_units} "
            f"reference {unit_name}s ({how})",
            {"statistic": float(ks[0])},
        ),
        _Test(
            "range_coverage",
            features,
            _permutation_pvalue(outside.astype(float)),
            f"{100 * (1 - coverage):.3g}% of current rows lie outside the reference range "
            f"[{low[0]:.6g}, {high[0]:.6g}] ({outside[0]} of {cur.n_units} current {unit_name}s; {how})",
            {
                "reference_min": float(low[0]),
                "reference_max": float(high[0]),
                "coverage": coverage,
                "units_outside": float(outside[0]),
            },
            ("coverage", coverage, t.range_coverage, False),
        ),
    ]


def _permutation_pvalue(statistics: np.ndarray) -> float:
    """Share of permutations at least as extreme as the observed statistic (index 0), counting it."""
    tolerance = 1e-12 * max(1.0, abs(float(statistics[0])))
    return float((1.0 + np.sum(statistics[1:] >= statistics[0] - tolerance)) / statistics.size)


def _effect_sizes(name: str, ref: np.ndarray, cur: np.ndarray, t: DriftThresholds) -> list[Check]:
    """How large a difference is, for a reader to judge a significant test; never a vote.

    Measured per unit for a feature constant within units, so each unit counts once.
    """
    features = (name,)
    scale = max(float(ref.std()), STD_FLOOR)
    wasserstein = float(stats.wasserstein_distance(ref, cur))
    ref_share, cur_share = _binned_shares(ref, cur, t.n_bins)
    psi = _psi(ref_share, cur_share)
    js = float(jensenshannon(ref_share, cur_share, base=2))
    measures = [
        (
            "wasserstein_normed",
            wasserstein / scale,
            t.wasserstein_normed,
            f"Wasserstein distance {wasserstein:.3g} = {wasserstein / scale:.3g} reference std",
            {"distance": wasserstein, "reference_std": scale},
        ),
        ("psi", psi, t.psi, f"PSI over reference deciles {psi:.3g}", {}),
        ("js_distance", js, t.js_distance, f"Jensen-Shannon distance {js:.3g}", {}),
    ]
    return [
        Check(
            check,
            features,
            value,
            limit,
            False,
            value < limit,
            f"descriptive; large from {limit:g}",
            f"{name}: {text} ({'large' if value >= limit else 'small'} by the {limit:g} convention)",
            details,
        )
        for check, value, limit, text, details in measures
    ]


def _binned_shares(ref: np.ndarray, cur: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Shares per reference-quantile bin; the open outer bins catch out-of-range values."""
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    return ref_counts / ref.size, cur_counts / cur.size


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    ref_share = np.where(ref_share == 0, PSI_EPSILON, ref_share)
    cur_share = np.where(cur_share == 0, PSI_EPSILON, cur_share)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def _spearman(data: np.ndarray) -> np.ndarray:
    """Rank correlation matrix; a constant feature correlates 0 with everything (not NaN)."""
    ranks = stats.rankdata(data, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(ranks, rowvar=False)
    return np.nan_to_num(corr, nan=0.0)


def _correlation_diff_pvalue(r_ref: float, r_cur: float, n_ref: int, n_cur: int) -> float:
    """Fisher-z test of two independent Spearman correlations.

    Uses the Fieller-Hartley-Pearson (1957) variance 1.06 / (n - 3) for Spearman's rho.
    """
    z_ref, z_cur = np.arctanh(np.clip([r_ref, r_cur], -0.999999, 0.999999))
    se = math.sqrt(1.06 / max(n_ref - 3, 1) + 1.06 / max(n_cur - 3, 1))
    return float(2.0 * stats.norm.sf(abs(z_ref - z_cur) / se))


def _correlation_tests(
    names: tuple[str, ...], ref: np.ndarray, cur: np.ndarray, t: DriftThresholds, unit_name: str
) -> list[_Test]:
    ref_corr, cur_corr = _spearman(ref), _spearman(cur)
    tests = []
    for i, j in combinations(range(len(names)), 2):
        r_ref, r_cur = float(ref_corr[i, j]), float(cur_corr[i, j])
        diff = abs(r_ref - r_cur)
        tests.append(
            _Test(
                "spearman_diff",
                (names[i], names[j]),
                _correlation_diff_pvalue(r_ref, r_cur, ref.shape[0], cur.shape[0]),
                f"Spearman correlation {r_ref:.2f} in reference vs {r_cur:.2f} in current over "
                f"{ref.shape[0]} vs {cur.shape[0]} {unit_name}s (|diff| {diff:.2f}, Fisher-z test)",
                {"reference": r_ref, "current": r_cur, "difference": diff},
                ("|diff|", diff, t.correlation_diff, True),
            )
        )
    return tests


def _energy_test(
    names: tuple[str, ...],
    ref: np.ndarray,
    cur: np.ndarray,
    t: DriftThresholds,
    rng: np.random.Generator,
    unit_name: str,
) -> _Test:
    """Energy-distance permutation test on standardized, subsampled units.

    Catches any change of the joint distribution (also non-monotone dependence that
    Spearman misses). All permutations are evaluated with one matrix product.
    """
    x = ref[rng.choice(ref.shape[0], min(ref.shape[0], t.energy_sample_size), replace=False)]
    y = cur[rng.choice(cur.shape[0], min(cur.shape[0], t.energy_sample_size), replace=False)]
    scale = np.maximum(ref.std(axis=0), STD_FLOOR)
    points = np.vstack([x, y]) / scale
    distances = cdist(points, points)
    nx, ny = x.shape[0], y.shape[0]
    labels = np.r_[np.ones(nx), np.zeros(ny)]
    shuffled = rng.permuted(np.tile(labels, (t.n_permutations, 1)), axis=1)
    in_x = np.column_stack([labels, shuffled.T])  # column 0 is the observed split
    row_sums = distances.sum(axis=1)
    within_x = np.einsum("ip,ip->p", in_x, distances @ in_x)
    x_to_all = row_sums @ in_x
    between = x_to_all - within_x
    within_y = row_sums.sum() - 2.0 * x_to_all + within_x
    energy = 2.0 * between / (nx * ny) - within_x / nx**2 - within_y / ny**2
    return _Test(
        "energy_pvalue",
        names,
        _permutation_pvalue(energy),
        f"joint distribution energy distance {energy[0]:.3g} (reference std units) on "
        f"{nx}+{ny} sampled {unit_name}s, {t.n_permutations} permutations",
        {"energy_distance": float(energy[0]), "n_reference_sampled": nx, "n_current_sampled": ny},
    )
