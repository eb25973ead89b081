"""``strategy: darts``: what the core knows of gradient-based architecture search.

DARTS (Liu, Simonyan and Yang, 2019) does not propose configs one by one: it trains one
over-parameterised network in which every architecture choice is a softmax-weighted mix,
then keeps the heaviest choice of each. That training needs torch and the data, so it
lives with the trainers (``kubetune.trainers.darts``) and runs in the search step. The core
part is the contract around it:

* :func:`darts_space` says which spaces it can relax and refuses the others, naming the
  parameter (categorical ``units`` and ``activation`` per layer or shared, a fixed
  ``n_layers``, every other parameter fixed);
* :class:`DerivedConfigSampler` hands the derived architecture to the loop as its only
  trial, so it is trained from scratch and scored like any other config, becomes the best
  trial and is what the final training trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna import Study
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.space import SearchSpace
from kubetune.core.space.params import CategoricalParam, FixedParam, IntParam
from kubetune.core.strategies.planned import PlannedConfigSampler
from kubetune.errors import SpecError

__all__ = ["RELAXED", "DartsSpace", "DerivedConfigSampler", "darts_space", "flat_params"]

# Architecture choices DARTS relaxes into softmax-weighted mixtures (torch-mlp names).
RELAXED = ("units", "activation")


@dataclass(frozen=True)
class DartsSpace:
    n_layers: int
    # name -> one list of choices per layer (a shared parameter: the same list, ``shared``)
    choices: dict[str, list[Any]]
    shared: frozenset[str]
    fixed: dict[str, Any]  # every other parameter, at its fixed value


def darts_space(space: SearchSpace) -> DartsSpace:
    """The relaxable form of ``space``, or a SpecError naming the parameter it cannot relax."""
    params = space.params
    count = params.get("n_layers")
    if count is None:
        raise SpecError("search_space.n_layers: strategy darts needs a fixed number of layers")
    # one value: fixed, or an int range of one value (what per_layer parameters refer to)
    depth = count.value if isinstance(count, FixedParam) else None
    if isinstance(count, IntParam) and count.low == count.high:
        depth = count.low
    if depth is None or isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise SpecError(
            "search_space.n_layers: strategy darts searches operations and widths of a fixed"
            " depth; give n_layers one value (e.g. {type: int, low: 3, high: 3})"
        )
    choices: dict[str, list[Any]] = {}
    shared: set[str] = set()
    fixed: dict[str, Any] = {"n_layers": depth}
    for name, param in params.items():
        if name == "n_layers":
            continue
        if param.when:
            raise SpecError(
                f"search_space.{name}.when: strategy darts relaxes no conditional parameters"
            )
        if isinstance(param, FixedParam):
            fixed[name] = param.value
            continue
        if name not in RELAXED:
            raise SpecError(
                f"search_space.{name}: strategy darts relaxes only the architecture choices"
                f" {', '.join(RELAXED)}; make {name} a fixed value or use another strategy"
            )
        if not isinstance(param, CategoricalParam):
            kind = "an int range" if isinstance(param, IntParam) else "a float range"
            raise SpecError(
                f"search_space.{name}: strategy darts needs a set of choices"
                f" (type: categorical), not {kind}"
            )
        if param.per_layer is None:
            shared.add(name)
        choices[name] = list(param.choices)
    if not choices:
        raise SpecError(
            f"search_space: strategy darts needs at least one of {', '.join(RELAXED)} to search"
        )
    return DartsSpace(depth, choices, frozenset(shared), fixed)


def flat_params(dspace: DartsSpace, structured: dict[str, Any]) -> dict[str, Any]:
    """The flat (optuna) names of a derived config: ``units_0``... for per-layer ones."""
    out: dict[str, Any] = {}
    for name in dspace.choices:
        value = structured[name]
        if name in dspace.shared:
            out[name] = value
        else:
            out.update({f"{name}_{i}": v for i, v in enumerate(value)})
    return out


class DerivedConfigSampler(PlannedConfigSampler):
    """Proposes one config (the derived architecture) until a trial of it completes."""

    strategy_name = "darts"

    def __init__(self, config: dict[str, Any] | None, *, seed: int | None = None) -> None:
        """``config``: the derived flat params; None before the supernet search ran (what
        ``kubetune validate`` plans with), when asking for a trial is a usage error."""
        super().__init__(seed=seed)
        self.config = None if config is None else dict(config)

    def plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        if self.config is None:
            raise SpecError(
                "strategy.name: darts trains a supernet with a torch trainer; run it with"
                " `kubetune run` (trainer.kind: torch-mlp), not with an objective function"
            )
        return dict(self.config)

    def remaining(self, study: Study) -> int:
        # one trial of the derived config, started or done: with parallel trials the loop
        # asks again before the first one finishes
        states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        taken = study.get_trials(deepcopy=False, states=states)
        config = self.config or {}
        done = any(all(t.params.get(k) == v for k, v in config.items()) for t in taken)
        return 0 if done else 1
