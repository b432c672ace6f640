"""Drift checks between a reference (training) dataset and current (serving) data.

Per-feature checks catch shifted or out-of-range marginals; the joint checks exist
because the article's failure mode has near-identical marginals (equal pairs [i, i]
vs independent pairs) and differs only in how the features move together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import cdist, jensenshannon

MIN_ROWS = 2
PSI_EPSILON = 1e-4
"""Stands in for an empty bin's share so PSI stays finite (the usual credit-scoring fix)."""
STD_FLOOR = 1e-3
"""Floor for a reference std used as a scale, as Evidently does, so constant features stay finite."""


@dataclass(frozen=True)
class DriftThresholds:
    """Limits for each check; defaults follow the conventions of common drift tools.

    - ``alpha`` 0.05 is the family-wise false-alarm rate of all hypothesis tests in one
      report, Bonferroni-corrected: each of the d per-feature KS tests and the joint
      energy test is held to ``alpha / (d + 1)`` (``alpha / d`` with one feature).
      This is alibi-detect's KSDrift default (p_val=0.05, correction='bonferroni').
    - ``psi`` 0.2: credit-scoring convention, <0.1 no shift, 0.1-0.2 moderate,
      >=0.2 significant (Lewis / Siddiqi use 0.25 as the upper cut; 0.2 is the stricter,
      also widespread variant).
    - ``js_distance`` 0.1 (base-2 Jensen-Shannon distance, in [0, 1]) and
      ``wasserstein_normed`` 0.1 (Wasserstein-1 divided by the reference std): Evidently's
      default drift thresholds for data with more than 1000 reference rows.
    - ``range_coverage`` 0.99: at least 99% of current values must lie inside the
      reference [min, max]; a model extrapolates outside it.
    - ``correlation_diff`` 0.2: largest tolerated change in Spearman correlation of a
      feature pair, the usual "weak correlation" boundary.
    - ``n_bins`` 10: reference deciles, the usual PSI binning.
    - ``energy_sample_size`` / ``n_permutations``: rows per side and permutations of the
      energy-distance test (Szekely & Rizzo), subsampled to keep it O(1) in data size.

    The effect sizes (Wasserstein, PSI, JS, correlation change) fail only when a test at
    the same corrected alpha confirms them (KS for a feature, Fisher z for a correlation):
    on a few hundred rows identical distributions exceed 0.1 by sampling noise alone.
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
    """One measured quantity, its limit and the verdict, with a sentence a person can act on."""

    name: str
    features: tuple[str, ...]
    value: float
    threshold: float
    higher_is_worse: bool
    passed: bool
    reason: str
    details: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": list(self.features),
            "value": float(self.value),
            "threshold": float(self.threshold),
            "higher_is_worse": self.higher_is_worse,
            "passed": self.passed,
            "reason": self.reason,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class DriftReport:
    """All checks of one comparison; drift means at least one check failed."""

    feature_names: tuple[str, ...]
    n_reference: int
    n_current: int
    thresholds: DriftThresholds
    checks: list[Check]

    @property
    def drift_detected(self) -> bool:
        return any(not c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, so it can go into a model card or KFP metrics as is."""
        return {
            "drift_detected": self.drift_detected,
            "reasons": self.reasons,
            "feature_names": list(self.feature_names),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "thresholds": asdict(self.thresholds),
            "checks": [c.to_dict() for c in self.checks],
        }


def validate_inputs(
    reference: np.ndarray, current: np.ndarray, feature_names: Sequence[str]
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
            raise ValueError(
                f"{label} has {array.shape[1]} feature columns but {len(names)} feature_names were given"
            )
        if array.shape[0] < MIN_ROWS:
            raise ValueError(f"{label} needs at least {MIN_ROWS} rows, got {array.shape[0]}")
        bad = ~np.isfinite(array).all(axis=0)
        if bad.any():
            raise ValueError(
                f"{label} contains NaN or inf in feature(s) {[n for n, b in zip(names, bad) if b]}"
            )
        arrays.append(array)
    return arrays[0], arrays[1], names


def compare(
    reference: np.ndarray,
    current: np.ndarray,
    feature_names: Sequence[str],
    thresholds: DriftThresholds = DriftThresholds(),
    seed: int = 0,
) -> DriftReport:
    """Run every per-feature and joint check of ``current`` against ``reference``."""
    ref, cur, names = validate_inputs(reference, current, feature_names)
    joint = len(names) >= 2
    n_tests = len(names) + int(joint)
    test_alpha = thresholds.alpha / n_tests
    if joint and 1.0 / (thresholds.n_permutations + 1) > test_alpha:
        raise ValueError(
            f"n_permutations={thresholds.n_permutations} cannot give a p-value below the "
            f"corrected alpha {test_alpha:.3g} for {len(names)} features; "
            f"use at least {math.ceil(1.0 / test_alpha)}"
        )
    checks: list[Check] = []
    for j, name in enumerate(names):
        checks.extend(_feature_checks(name, ref[:, j], cur[:, j], thresholds, test_alpha, n_tests))
    if joint:
        checks.extend(_correlation_checks(names, ref, cur, thresholds, test_alpha))
        checks.append(_energy_check(names, ref, cur, thresholds, test_alpha, np.random.default_rng(seed)))
    return DriftReport(names, ref.shape[0], cur.shape[0], thresholds, checks)


def _check(
    name: str,
    features: tuple[str, ...],
    value: float,
    threshold: float,
    higher_is_worse: bool,
    statement: str,
    details: Mapping[str, float] | None = None,
    confirmation: tuple[str, float, float] | None = None,
) -> Check:
    """Apply the one comparison rule: distances fail at >= limit, p-values/coverage below it.

    ``statement`` marks with ``{verdict}`` where the comparison (e.g. ">= 0.2") goes.
    ``confirmation`` (test name, p-value, alpha) makes an effect size count only when a
    significance test backs it: on a few hundred rows, distances of identical
    distributions routinely exceed 0.1 from sampling noise alone.
    """
    exceeds = value >= threshold if higher_is_worse else value < threshold
    symbol = (">=" if exceeds else "<") if higher_is_worse else ("<" if exceeds else ">=")
    reason = f"{','.join(features)}: " + statement.replace("{verdict}", f"{symbol} {threshold:.3g}")
    passed = not exceeds
    all_details = {k: float(v) for k, v in (details or {}).items()}
    if confirmation is not None:
        test, p_value, alpha = confirmation
        all_details["confirming_p_value"] = p_value
        if exceeds and p_value >= alpha:
            passed = True
            reason += (
                f"; not confirmed by the {test} (p-value {p_value:.3g} >= {alpha:.3g}), "
                "so taken as sampling noise"
            )
    return Check(
        name=name,
        features=features,
        value=float(value),
        threshold=float(threshold),
        higher_is_worse=higher_is_worse,
        passed=passed,
        reason=reason,
        details=all_details,
    )


def _feature_checks(
    name: str,
    ref: np.ndarray,
    cur: np.ndarray,
    t: DriftThresholds,
    test_alpha: float,
    n_tests: int,
) -> list[Check]:
    features = (name,)
    ks = stats.ks_2samp(ref, cur)
    ks_confirms = ("KS test", float(ks.pvalue), test_alpha)
    scale = max(float(ref.std()), STD_FLOOR)
    wasserstein = float(stats.wasserstein_distance(ref, cur))
    ref_share, cur_share = _binned_shares(ref, cur, t.n_bins)
    psi = _psi(ref_share, cur_share)
    js = float(jensenshannon(ref_share, cur_share, base=2))
    low, high = float(ref.min()), float(ref.max())
    coverage = float(np.mean((cur >= low) & (cur <= high)))
    outside = 1.0 - coverage
    return [
        _check(
            "ks_pvalue",
            features,
            float(ks.pvalue),
            test_alpha,
            False,
            f"KS statistic {ks.statistic:.3g}, p-value {ks.pvalue:.3g} {{verdict}} "
            f"(alpha {t.alpha:g} / {n_tests} tests, Bonferroni)",
            {"statistic": float(ks.statistic)},
        ),
        _check(
            "wasserstein_normed",
            features,
            wasserstein / scale,
            t.wasserstein_normed,
            True,
            f"Wasserstein distance {wasserstein:.3g} = {wasserstein / scale:.3g} reference std {{verdict}}",
            {"distance": wasserstein, "reference_std": scale},
            ks_confirms,
        ),
        _check(
            "psi",
            features,
            psi,
            t.psi,
            True,
            f"PSI over reference deciles {psi:.3g} {{verdict}}",
            confirmation=ks_confirms,
        ),
        _check(
            "js_distance",
            features,
            js,
            t.js_distance,
            True,
            f"Jensen-Shannon distance {js:.3g} {{verdict}}",
            confirmation=ks_confirms,
        ),
        _check(
            "range_coverage",
            features,
            coverage,
            t.range_coverage,
            False,
            f"{100 * outside:.3g}% of current values lie outside the reference range "
            f"[{low:.6g}, {high:.6g}] (coverage {coverage:.4g} {{verdict}})",
            {"reference_min": low, "reference_max": high, "fraction_outside": outside},
        ),
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


def _correlation_checks(
    names: tuple[str, ...], ref: np.ndarray, cur: np.ndarray, t: DriftThresholds, test_alpha: float
) -> list[Check]:
    ref_corr, cur_corr = _spearman(ref), _spearman(cur)
    checks = []
    for i, j in combinations(range(len(names)), 2):
        r_ref, r_cur = float(ref_corr[i, j]), float(cur_corr[i, j])
        diff = abs(r_ref - r_cur)
        p_value = _correlation_diff_pvalue(r_ref, r_cur, ref.shape[0], cur.shape[0])
        checks.append(
            _check(
                "spearman_diff",
                (names[i], names[j]),
                diff,
                t.correlation_diff,
                True,
                f"Spearman correlation {r_ref:.2f} in reference vs {r_cur:.2f} in current "
                f"(|diff| {diff:.2f} {{verdict}})",
                {"reference": r_ref, "current": r_cur},
                ("Fisher-z test", p_value, test_alpha),
            )
        )
    return checks


def _energy_check(
    names: tuple[str, ...],
    ref: np.ndarray,
    cur: np.ndarray,
    t: DriftThresholds,
    test_alpha: float,
    rng: np.random.Generator,
) -> Check:
    """Energy-distance permutation test on standardized, subsampled rows.

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
    p_value = (1.0 + np.sum(energy[1:] >= energy[0])) / (1.0 + t.n_permutations)
    return _check(
        "energy_pvalue",
        names,
        float(p_value),
        test_alpha,
        False,
        f"joint distribution energy distance {energy[0]:.3g} (reference std units), "
        f"permutation p-value {p_value:.3g} {{verdict}} ({nx}+{ny} sampled rows)",
        {"energy_distance": float(energy[0]), "n_reference_sampled": nx, "n_current_sampled": ny},
    )
