"""Search spaces: parameter definitions, conditions, per-layer (architecture) parameters."""

from kubetune.core.space.grid import build_grid, count_configs, iter_configs
from kubetune.core.space.params import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    ParamSpec,
    shorthand_to_param,
)
from kubetune.core.space.search_space import (
    MAX_LAYERS,
    MAX_PARAMS,
    SearchSpace,
    SpaceError,
    to_distribution,
)

__all__ = [
    "MAX_LAYERS",
    "MAX_PARAMS",
    "CategoricalParam",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "ParamSpec",
    "SearchSpace",
    "SpaceError",
    "build_grid",
    "count_configs",
    "iter_configs",
    "shorthand_to_param",
    "to_distribution",
]
