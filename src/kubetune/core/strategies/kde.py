"""A product-kernel density estimate over encoded configs, as BOHB fits one.

Numeric dimensions (in [0, 1]) use a Gaussian kernel, categorical ones the
Aitchison-Aitken kernel (keep the value with probability 1 - bw, else any other choice);
bandwidths follow the normal-reference rule with a floor, as in Falkner et al. (2018)
who use statsmodels' ``KDEMultivariate`` with the same kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubetune.core.strategies.encoding import Dimension

__all__ = ["ProductKDE"]


class ProductKDE:
    def __init__(
        self, data: np.ndarray, dims: Sequence[Dimension], *, min_bandwidth: float = 1e-3
    ) -> None:
        if data.ndim != 2 or len(data) == 0 or data.shape[1] != len(dims):
            raise ValueError("data: need an (n, d) array with n >= 1 and one column per dim")
        self.data = data
        self.dims = list(dims)
        self.categorical = np.array([d.is_categorical for d in dims], dtype=bool)
        self.n_choices = np.array([max(d.n_choices, 2) for d in dims], dtype=float)
        n, d = data.shape
        std = data.std(axis=0) if n > 1 else np.zeros(d)
        bw = 1.06 * std * n ** (-1.0 / (4 + d))
        bw = np.maximum(bw, min_bandwidth)
        # Aitchison-Aitken's lambda is at most (c - 1) / c: then every choice is equally likely
        cat_max = (self.n_choices - 1) / self.n_choices
        self.bandwidth = np.where(self.categorical, np.minimum(bw, cat_max), bw)

    def log_pdf(self, points: np.ndarray) -> np.ndarray:
        """log density of each row of ``points`` (m, d)."""
        diff = points[:, None, :] - self.data[None, :, :]  # (m, n, d)
        bw = self.bandwidth
        gauss = -0.5 * (diff / bw) ** 2 - np.log(bw * np.sqrt(2 * np.pi))
        same = np.abs(diff) < 0.5
        aitchison = np.where(same, np.log1p(-bw), np.log(bw / (self.n_choices - 1)))
        per_dim = np.where(self.categorical, aitchison, gauss)
        per_point = per_dim.sum(axis=2)  # product over dimensions
        top = per_point.max(axis=1, keepdims=True)
        mean = np.log(np.exp(per_point - top).mean(axis=1))  # mean over the data, stably
        return np.asarray(top[:, 0] + mean)

    def sample(
        self, rng: np.random.RandomState, size: int, *, bandwidth_factor: float = 1.0
    ) -> np.ndarray:
        """Draws around random data points; numeric widths scaled by ``bandwidth_factor``."""
        centres = self.data[rng.randint(len(self.data), size=size)]
        out = np.empty_like(centres)
        for j, dim in enumerate(self.dims):
            if dim.is_categorical:
                keep = rng.rand(size) < 1.0 - self.bandwidth[j]
                out[:, j] = np.where(keep, centres[:, j], rng.randint(dim.n_choices, size=size))
            else:
                out[:, j] = _truncated_normal(
                    rng, centres[:, j], self.bandwidth[j] * bandwidth_factor
                )
        return out


def _truncated_normal(rng: np.random.RandomState, mean: np.ndarray, sd: float) -> np.ndarray:
    """Normal draws kept inside [0, 1] by redrawing (then clipping the rare leftovers)."""
    x = rng.normal(mean, sd)
    for _ in range(20):
        bad = (x < 0.0) | (x > 1.0)
        if not bad.any():
            break
        x[bad] = rng.normal(mean[bad], sd)
    return np.clip(x, 0.0, 1.0)
