"""``strategy: darts``: what the core knows of gradient-based architecture search.

DARTS (Liu, Simonyan and Yang, 2019) does not propose configs one by one: it trains one
over-parameterised network in which every architecture choice is a softmax-weighted mix,
then keeps the heaviest choice of each. That training needs torch and the data, so it
lives with the trainers (``kubetune.trainers.darts``) and runs in the search step. The core
part is the contract around it:

* :func:`darts_space` says which spaces it can relax and refuses the others, naming the
  parameter (torch-mlp: categorical ``units`` and ``activation`` per layer or shared, a
  fixed ``n_layers``; torch-cnn: categorical ``channels``, ``activation`` and
  ``kernel_size`` per block or shared, a fixed ``n_blocks``; every other parameter fixed);
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

__all__ = [
    "DARTS_ORDERS",
    "FAMILIES",
    "RELAXED",
    "DartsFamily",
    "DartsSpace",
    "DerivedConfigSampler",
    "darts_space",
    "flat_params",
]

#: ``strategy.order``: 1, the architecture gradient at the current weights; 2, one virtual
#: weight step ahead (``trainers/darts_step.py``)
DARTS_ORDERS = (1, 2)


@dataclass(frozen=True)
class DartsFamily:
    """What DARTS relaxes for one trainer: the depth parameter it needs fixed and the
    architecture choices it mixes with softmax weights."""

    trainer: str
    depth: str
    relaxed: tuple[str, ...]


FAMILIES = {
    "torch-mlp": DartsFamily("torch-mlp", "n_layers", ("units", "activation")),
    "torch-cnn": DartsFamily("torch-cnn", "n_blocks", ("channels", "activation", "kernel_size")),
}
# Architecture choices DARTS relaxes into softmax-weighted mixtures (torch-mlp names).
RELAXED = FAMILIES["torch-mlp"].relaxed
CNN_KERNELS = (3, 5)  # torch-cnn's kernel sizes: the candidate convolutions of a block


@dataclass(frozen=True)
class DartsSpace:
    n_layers: int  # the fixed depth: hidden layers (torch-mlp) or conv blocks (torch-cnn)
    # name -> one list of choices per layer (a shared parameter: the same list, ``shared``)
    choices: dict[str, list[Any]]
    shared: frozenset[str]
    fixed: dict[str, Any]  # every other parameter, at its fixed value
    trainer: str = "torch-mlp"

    @property
    def depth(self) -> str:
        return FAMILIES[self.trainer].depth


def darts_space(space: SearchSpace, trainer: str | None = None) -> DartsSpace:
    """The relaxable form of ``space`` for ``trainer`` (torch-mlp or torch-cnn; None: the
    one whose depth parameter the space has), or a SpecError naming the parameter it
    cannot relax."""
    params = space.params
    if trainer is None:  # the strategy factory knows the space, not the trainer
        trainer = "torch-cnn" if "n_blocks" in params else "torch-mlp"
    family = FAMILIES.get(trainer)
    if family is None:
        raise SpecError(
            f"trainer.kind: strategy darts supports {', '.join(FAMILIES)} (got {trainer})"
        )
    depth_name, relaxed = family.depth, family.relaxed
    unit = "blocks" if depth_name == "n_blocks" else "layers"
    count = params.get(depth_name)
    if count is None:
        raise SpecError(f"search_space.{depth_name}: strategy darts needs a fixed number of {unit}")
    # one value: fixed, or an int range of one value (what per_layer parameters refer to)
    depth = count.value if isinstance(count, FixedParam) else None
    if isinstance(count, IntParam) and count.low == count.high:
        depth = count.low
    if depth is None or isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise SpecError(
            f"search_space.{depth_name}: strategy darts searches operations and widths of a"
            f" fixed depth; give {depth_name} one value (e.g. {{type: int, low: 3, high: 3}})"
        )
    choices: dict[str, list[Any]] = {}
    shared: set[str] = set()
    fixed: dict[str, Any] = {depth_name: depth}
    for name, param in params.items():
        if name == depth_name:
            continue
        if param.when:
            raise SpecError(
                f"search_space.{name}.when: strategy darts relaxes no conditional parameters"
            )
        if isinstance(param, FixedParam):
            if name in relaxed:  # a fixed architecture choice is a single candidate
                value = param.value
                _check_choices(name, value if isinstance(value, list) else [value], trainer)
            fixed[name] = param.value
            continue
        if name not in relaxed:
            raise SpecError(
                f"search_space.{name}: strategy darts relaxes only the architecture choices"
                f" {', '.join(relaxed)} ({trainer}); make {name} a fixed value or use another"
                " strategy"
            )
        if not isinstance(param, CategoricalParam):
            kind = "an int range" if isinstance(param, IntParam) else "a float range"
            raise SpecError(
                f"search_space.{name}: strategy darts needs a set of choices"
                f" (type: categorical), not {kind}"
            )
        if param.per_layer not in (None, depth_name):
            raise SpecError(
                f"search_space.{name}.per_layer: strategy darts needs per_layer: {depth_name}"
            )
        _check_choices(name, list(param.choices), trainer)
        if param.per_layer is None:
            shared.add(name)
        choices[name] = list(param.choices)
    if not choices:
        raise SpecError(
            f"search_space: strategy darts needs at least one of {', '.join(relaxed)} to search"
        )
    return DartsSpace(depth, choices, frozenset(shared), fixed, trainer)


def _check_choices(name: str, options: list[Any], trainer: str) -> None:
    """Choices the supernet can build: widths are positive ints, kernels 3 or 5."""
    if name in ("units", "channels") and not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in options
    ):
        raise SpecError(f"search_space.{name}: strategy darts needs positive integer choices")
    if trainer == "torch-cnn" and name == "kernel_size" and not set(options) <= set(CNN_KERNELS):
        raise SpecError(
            f"search_space.kernel_size: torch-cnn's kernel sizes are 3 or 5 (got {options})"
        )


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
                " `kubetune run` (trainer.kind: torch-mlp or torch-cnn), not with an objective"
                " function"
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
