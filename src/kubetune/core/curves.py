"""Learning-curve extrapolation: predict a curve's value at the full budget, with uncertainty.

A small ensemble of parametric families (power law, exponential, logarithmic, Weibull,
linear) is fitted by bounded least squares (``scipy.optimize.curve_fit``) to the points a
trial reported so far. Each family gives a prediction at the full budget and a variance
(its parameters' covariance carried to that point by the delta method, plus the residual
noise); the ensemble is their mixture weighted by how well each fits (Akaike weights), so
disagreement between families that fit alike widens the uncertainty instead of being
averaged away.

The fit works on a "lower is better" view of the curve (a maximised metric is negated),
with steps scaled to ``x = step / max_step`` and values scaled to the curve's own range, so
the same bounds suit a loss in the thousands and an accuracy near 1. Every family is
non-increasing in that view: a curve is assumed to keep improving or stay flat, which makes
the prediction optimistic, hence the pruning cautious.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = ["FAMILIES", "CurveFamily", "CurvePrediction", "extrapolate"]

_Basis = Callable[..., np.ndarray]


@dataclass(frozen=True)
class CurveFamily:
    """``z(x) = c + a * basis(x, *theta)`` with ``a >= 0``, ``basis >= 0`` non-increasing on
    (0, 1] and ``basis(1) = 0``: ``c`` is the value at the full budget, the one number the
    pruner needs, which keeps the prediction a single well-conditioned parameter."""

    name: str
    basis: _Basis
    theta_lower: tuple[float, ...] = ()
    theta_upper: tuple[float, ...] = ()
    theta_grid: tuple[tuple[float, ...], ...] = ((),)  # starting points to try

    @property
    def n_params(self) -> int:
        return 2 + len(self.theta_lower)

    def model(self, x: np.ndarray, c: float, a: float, *theta: float) -> np.ndarray:
        return c + a * self.basis(x, *theta)

    @property
    def bounds(self) -> tuple[list[float], list[float]]:
        return [-_BIG, 0.0, *self.theta_lower], [_BIG, _BIG, *self.theta_upper]

    def initial(self, x: np.ndarray, z: np.ndarray) -> list[float]:
        """The best grid point with (c, a) solved in closed form: a start from which the
        bounded fit converges in a few evaluations."""
        best: tuple[float, list[float]] | None = None
        for theta in self.theta_grid:
            g = self.basis(x, *theta)
            var = float(np.var(g))
            a = max(float(np.mean((g - g.mean()) * (z - z.mean()))) / var, 0.0) if var else 0.0
            a = min(a, _BIG)
            c = float(np.mean(z - a * g))
            sse = float(np.sum((z - c - a * g) ** 2))
            if best is None or sse < best[0]:
                best = (sse, [c, a, *theta])
        if best is None:  # the grid above is never empty
            raise ValueError("no candidate exponent to fit")
        return best[1]


def _pow(x: np.ndarray, b: float) -> np.ndarray:
    return np.power(x, -b) - 1.0


def _exp(x: np.ndarray, b: float) -> np.ndarray:
    return np.exp(-b * x) - math.exp(-b)


def _linear(x: np.ndarray) -> np.ndarray:
    return 1.0 - x


def _log(x: np.ndarray) -> np.ndarray:
    return -np.log(x)


def _weibull(x: np.ndarray, b: float, d: float) -> np.ndarray:
    return np.exp(-np.power(b * x, d)) - math.exp(-(b**d))


# A report waits for the fit: past this many evaluations a family gives up (RuntimeError).
_MAX_EVALUATIONS = 20
# Bounds are in the scaled units (see the module docstring).
_BIG = 1e3
_POW_B = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
_EXP_B = (0.02, 0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0)
FAMILIES: tuple[CurveFamily, ...] = (
    CurveFamily("pow", _pow, (0.01,), (3.0,), tuple((b,) for b in _POW_B)),
    CurveFamily("exp", _exp, (0.0,), (50.0,), tuple((b,) for b in _EXP_B)),
    CurveFamily("log", _log),
    # No saturation at all: the optimist that keeps a slow starter from being written off.
    CurveFamily("linear", _linear),
    CurveFamily(
        "weibull",
        _weibull,
        (0.01, 0.2),
        (50.0, 5.0),
        tuple((b, d) for b in (1.0, 3.0, 8.0, 20.0) for d in (0.5, 1.0, 2.0)),
    ),
)


@dataclass(frozen=True)
class CurvePrediction:
    """The predicted value at the full budget (in the curve's own units and direction)."""

    mean: float
    std: float
    families: tuple[str, ...]  # the families that could be fitted
    minimize: bool

    def probability_better(self, reference: float) -> float:
        """P(the value at the full budget is better than ``reference``)."""
        if self.std <= 0:
            better = self.mean < reference if self.minimize else self.mean > reference
            return 1.0 if better else 0.0
        below = NormalDist(self.mean, self.std).cdf(reference)
        return below if self.minimize else 1.0 - below


def extrapolate(
    steps: Sequence[float],
    values: Sequence[float],
    *,
    at: float,
    minimize: bool,
    families: Sequence[CurveFamily] = FAMILIES,
) -> CurvePrediction | None:
    """Predict the curve ``(steps, values)`` at step ``at``; None when no family fits.

    ``steps`` are positive and increasing; non-finite values are ignored.
    """
    step_arr = np.asarray(steps, dtype=float)
    val_arr = np.asarray(values, dtype=float)
    keep = np.isfinite(step_arr) & np.isfinite(val_arr) & (step_arr > 0)
    step_arr, val_arr = step_arr[keep], val_arr[keep]
    if len(step_arr) < 2 or at <= 0:
        return None
    x = step_arr / float(at)
    sign = 1.0 if minimize else -1.0
    z_raw = sign * val_arr
    offset = float(z_raw[-1])
    scale = float(np.ptp(z_raw)) or max(abs(offset), 1.0) * 1e-3
    z = (z_raw - offset) / scale
    means: list[float] = []
    variances: list[float] = []
    names: list[str] = []
    scores: list[float] = []
    for family in families:
        n_params = family.n_params
        if len(x) < n_params + 2:
            # Too few points to judge the fit (AICc undefined): such a fit passes through
            # every point and would claim a certainty it does not have.
            continue
        fitted = _fit(family, x, z)
        if fitted is None:
            continue
        params, cov = fitted
        residuals = z - family.model(x, *params)
        if not np.all(np.isfinite(residuals)):
            continue
        noise = float(residuals @ residuals) / (len(x) - n_params)
        # ``c`` (params[0]) is the value at x = 1, so its variance is cov[0, 0].
        param_var = float(cov[0, 0]) if np.isfinite(cov[0, 0]) else math.inf
        if not math.isfinite(param_var):
            # The data cannot pin the asymptote down: as unsure as the whole improvement.
            param_var = max(float(z[0] - params[0]) ** 2, 1.0)
        means.append(float(params[0]))
        variances.append(param_var + noise)
        names.append(family.name)
        scores.append(_aic(float(residuals @ residuals), len(x), n_params))
    if not means:
        return None
    weights = np.exp(-0.5 * (np.asarray(scores) - min(scores)))
    weights /= weights.sum()
    mean_z = float(weights @ np.asarray(means))
    var_z = float(weights @ (np.asarray(variances) + (np.asarray(means) - mean_z) ** 2))
    mean = sign * (mean_z * scale + offset)
    std = math.sqrt(max(var_z, 0.0)) * scale
    return CurvePrediction(mean=mean, std=std, families=tuple(names), minimize=minimize)


def _aic(sse: float, n: int, k: int) -> float:
    """Akaike's criterion, small-sample corrected (``n >= k + 2``): how much each family is
    trusted in the mixture. The floor keeps a perfect fit from taking the log of zero."""
    return n * math.log(max(sse / n, 1e-12)) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _fit(family: CurveFamily, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Bounded least squares from the family's best grid start.

    A family without shape parameters is linear in ``c`` and ``a``: the grid start is its
    fit already. When the full fit does not converge, the start's shape parameters are kept,
    so a hard curve still gets this family's say.
    """
    from scipy.optimize import OptimizeWarning, curve_fit  # a second of import, once

    start = family.initial(x, z)
    if family.theta_lower:
        lower, upper = family.bounds
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                params, cov = curve_fit(
                    family.model, x, z, p0=start, bounds=(lower, upper), max_nfev=_MAX_EVALUATIONS
                )
                return np.asarray(params), np.asarray(cov)
            except (RuntimeError, ValueError, np.linalg.LinAlgError):
                pass  # keep the grid start's shape
    design = np.column_stack([np.ones_like(x), family.basis(x, *start[2:])])
    residuals = z - design @ np.asarray(start[:2])
    noise = float(residuals @ residuals) / max(len(x) - family.n_params, 1)
    try:
        cov = noise * np.linalg.inv(design.T @ design)
    except np.linalg.LinAlgError:
        cov = np.full((2, 2), np.inf)  # a flat basis: the asymptote is not identified
    return np.asarray(start), cov
