"""Search strategies (samplers) by name, and the ``auto`` rule that picks one."""

from kubetune.core.strategies.auto import StrategyChoice, choose_scheduler, choose_strategy
from kubetune.core.strategies.bohb import BOHBSampler
from kubetune.core.strategies.darts import DerivedConfigSampler
from kubetune.core.strategies.evolution import RegularizedEvolutionSampler
from kubetune.core.strategies.factory import BUILDERS, SamplerContext, build_sampler
from kubetune.core.strategies.grid import ConditionalGridSampler
from kubetune.core.strategies.rl import ReinforceSampler

STRATEGY_NAMES = ("auto", *BUILDERS)


def known_strategies() -> tuple[str, ...]:
    """Every name ``strategy.name`` accepts, read from the registry when asked."""
    return ("auto", *BUILDERS)


__all__ = [
    "STRATEGY_NAMES",
    "BOHBSampler",
    "ConditionalGridSampler",
    "DerivedConfigSampler",
    "RegularizedEvolutionSampler",
    "ReinforceSampler",
    "SamplerContext",
    "StrategyChoice",
    "build_sampler",
    "choose_scheduler",
    "choose_strategy",
    "known_strategies",
]
