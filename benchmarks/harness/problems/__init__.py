"""Benchmark problems by name: one registry of factories, grouped in suites.

A problem is built only when asked for, so listing the registry imports no table or torch.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.problems.base import Problem, Report
from harness.problems.sklearn_grid import DATASETS, MODELS, SklearnProblem
from harness.problems.synthetic import Branin, Hartmann6
from harness.problems.tabular import TabularProblem
from harness.problems.torch_mlp import DigitsMLP

__all__ = ["PROBLEMS", "SUITES", "Problem", "Report", "make_problem"]

# budget steps of the synthetic multi-fidelity problems: Hyperband rungs 1, 3, 9, 27
MF_STEPS = 27

PROBLEMS: dict[str, Callable[[], Problem]] = {
    "branin": Branin,
    "hartmann6": Hartmann6,
    "branin-mf": lambda: Branin(MF_STEPS, "correlated"),
    "hartmann6-mf": lambda: Hartmann6(MF_STEPS),
    "branin-misleading": lambda: Branin(MF_STEPS, "misleading"),
    "torch-mlp-digits": DigitsMLP,
}
_TABULAR = {
    "hpobench": ("australian", "blood_transfusion", "car", "credit_g", "kc1", "phoneme"),
    "hpolib": ("naval_propulsion", "parkinsons_telemonitoring", "protein_structure"),
    "nasbench201": ("cifar10", "cifar100", "imagenet"),
}
for _family, _datasets in _TABULAR.items():
    for _dataset in _datasets:
        PROBLEMS[f"{_family}-{_dataset}"] = (
            lambda f=_family, d=_dataset: TabularProblem(f, d)  # type: ignore[misc]
        )
for _model in MODELS:
    for _dataset in DATASETS:
        PROBLEMS[f"sklearn-{_model}-{_dataset}"] = (
            lambda m=_model, d=_dataset: SklearnProblem(m, d)  # type: ignore[misc]
        )

# What each mode runs. ``quick`` is a subset chosen to finish in about 10 minutes on 2 cores.
SUITES: dict[str, tuple[str, ...]] = {
    "smoke": ("branin", "branin-mf", "sklearn-dt-iris"),
    "quick": (
        "branin",
        "hartmann6",
        "branin-mf",
        "branin-misleading",
        "hpobench-australian",
        "hpolib-naval_propulsion",
        "nasbench201-cifar10",
        "sklearn-svm-wine",
        "sklearn-dt-breast_cancer",
        "sklearn-knn-digits",
        "sklearn-linear-diabetes",
        "torch-mlp-digits",
    ),
    # every synthetic and tabular problem (cheap trials), the torch MLP, and the scikit-learn
    # grid's four cheapest models on its three smallest data sets (the rest of the grid is
    # what makes ``full`` take many hours on 2 cores)
    "standard": (
        "branin",
        "hartmann6",
        "branin-mf",
        "hartmann6-mf",
        "branin-misleading",
        *(name for name in PROBLEMS if name.split("-")[0] in _TABULAR),
        *(
            f"sklearn-{model}-{dataset}"
            for model in ("svm", "dt", "knn", "linear")
            for dataset in ("wine", "iris", "breast_cancer")
        ),
        "torch-mlp-digits",
    ),
    "full": tuple(PROBLEMS),
}


def make_problem(name: str) -> Problem:
    if name not in PROBLEMS:
        raise KeyError(f"problem: unknown '{name}' (known: {', '.join(PROBLEMS)})")
    return PROBLEMS[name]()
