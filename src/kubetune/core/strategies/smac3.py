"""``strategy: smac``: random-forest Bayesian optimisation through SMAC3 (optional extra).

SMAC3's ask/tell interface sits behind kubetune's sampler interface: each new trial takes
``smac.ask()``'s config (so several trials can be out at once), and every finished trial is
told back before the next ask. Trials SMAC did not propose (queued retries, a study resumed
by a restarted controller) are told too, so SMAC's run history always matches the study.

The search space becomes a ConfigSpace with the same conditions: ``when:`` as ``InCondition``
(all of them together as an ``AndConjunction``), a per-layer parameter's layer ``i`` active
while the layer count is above ``i``. Categorical choices are named by index (``c0``, ``c1``
...) so any value the spec allows survives the trip.

In a small finite space SMAC runs out of configs it has not proposed before (after 16
random draws that were all seen, it raises ``ConfigurationSpaceExhaustedException`` and
its proposal generator is spent for good). The trials left then go to configs no trial has
tried yet: first the neighbours of the best trial's config (one parameter changed), then
random draws; only a space with every config tried repeats one.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

from optuna import Study
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from kubetune.core.optuna_compat import distribution_contains
from kubetune.core.space import SearchSpace
from kubetune.core.space.params import FixedParam
from kubetune.core.strategies.planned import PlannedConfigSampler
from kubetune.errors import SpecError

__all__ = ["SmacSampler", "import_smac"]

MISSING_EXTRA = "strategy.name: smac needs the smac extra: pip install 'kubetune[smac]'"
#: random configs drawn to find one no trial has tried, once SMAC's proposals are spent
UNTRIED_DRAWS = 1000


def import_smac() -> Any:
    """The smac module, or a SpecError naming the extra when it is not installed."""
    try:
        import ConfigSpace  # noqa: F401
        import smac
    except ImportError:
        raise SpecError(MISSING_EXTRA) from None
    return smac


class _Codec:
    """Flat optuna params <-> ConfigSpace values, one hyperparameter per flat name."""

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        self.distributions = dict(distributions)

    def hyperparameter(self, name: str) -> Any:
        from ConfigSpace import Categorical, Float, Integer

        dist = self.distributions[name]
        if isinstance(dist, CategoricalDistribution):
            return Categorical(name, [f"c{i}" for i in range(len(dist.choices))])
        if isinstance(dist, FloatDistribution) and dist.step is None:
            return Float(name, (dist.low, dist.high), log=dist.log)
        if isinstance(dist, IntDistribution) and dist.step == 1:
            return Integer(name, (dist.low, dist.high), log=dist.log)
        if not (isinstance(dist, FloatDistribution | IntDistribution) and dist.step is not None):
            raise TypeError(f"unsupported distribution {dist!r}")
        count = round((dist.high - dist.low) / dist.step)
        return Integer(name, (0, count))  # stepped range: the index of the step

    def to_smac(self, name: str, value: Any) -> Any:
        dist = self.distributions[name]
        if isinstance(dist, CategoricalDistribution):
            return f"c{dist.to_internal_repr(value)}"
        if isinstance(dist, FloatDistribution | IntDistribution):
            if dist.step is not None and not (isinstance(dist, IntDistribution) and dist.step == 1):
                return round((value - dist.low) / dist.step)
            return int(value) if isinstance(dist, IntDistribution) else float(value)
        return value

    def from_smac(self, name: str, value: Any) -> Any:
        dist = self.distributions[name]
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[int(str(value)[1:])]
        if isinstance(dist, IntDistribution):
            return int(dist.low + int(value) * dist.step) if dist.step != 1 else int(value)
        if not (isinstance(dist, FloatDistribution)):
            raise TypeError(f"unsupported distribution {dist!r}")
        if dist.step is not None:
            return float(min(dist.low + int(value) * dist.step, dist.high))
        return float(value)


def config_space(space: SearchSpace, seed: int | None) -> tuple[Any, _Codec]:
    """The ConfigSpace of ``space`` (with its conditions) and the codec for its values."""
    from ConfigSpace import AndConjunction, ConfigurationSpace, GreaterThanCondition, InCondition

    codec = _Codec(space.distributions())
    params = space.params
    owner: dict[str, tuple[str, int | None]] = {}  # flat name -> (spec name, layer or None)
    for name in space.searched_names:
        layers = getattr(params[name], "per_layer", None)
        if layers is None:
            owner[name] = (name, None)
            continue
        count = codec.distributions[layers]
        if not (isinstance(count, IntDistribution)):
            raise TypeError(f"unsupported distribution {count!r}")
        for i in range(count.high):
            owner[f"{name}_{i}"] = (name, i)
    cs = ConfigurationSpace(seed=seed)
    hps = {flat: codec.hyperparameter(flat) for flat in owner}
    cs.add(list(hps.values()))
    conditions: list[Any] = []
    for flat, (name, layer) in owner.items():
        parts: list[Any] = []
        param = params[name]
        for other, expected in (param.when or {}).items():
            allowed = expected if isinstance(expected, list) else [expected]
            other_param = params[other]
            if isinstance(other_param, FixedParam):
                continue  # the spec already checks a condition on a fixed value is satisfiable
            if other not in hps:
                raise SpecError(
                    f"search_space.{name}.when: smac cannot condition on the per-layer"
                    f" parameter '{other}'; use another strategy"
                )
            values = [codec.to_smac(other, v) for v in allowed if _fits(codec, other, v)]
            parts.append(InCondition(hps[flat], hps[other], values))
        layers = getattr(param, "per_layer", None)
        if layer is not None and layers is not None:
            count = codec.distributions[layers]
            if not isinstance(count, IntDistribution) or layer >= count.low:
                parts.append(GreaterThanCondition(hps[flat], hps[layers], layer))
        if len(parts) == 1:
            conditions.append(parts[0])
        elif parts:
            conditions.append(AndConjunction(*parts))
    if conditions:
        cs.add(conditions)
    return cs, codec


def _fits(codec: _Codec, name: str, value: Any) -> bool:
    return distribution_contains(codec.distributions[name], value)


class SmacSampler(PlannedConfigSampler):
    def __init__(
        self,
        space: SearchSpace,
        *,
        n_trials: int,
        facade: str = "hpo",
        seed: int | None = None,
    ) -> None:
        smac = import_smac()
        super().__init__(seed=seed)
        self._cs, self._codec = config_space(space, seed)
        self._dir = tempfile.mkdtemp(prefix="kubetune-smac-")  # SMAC's own run files
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        facades = {
            "hpo": smac.HyperparameterOptimizationFacade,
            "bb": smac.BlackBoxFacade,  # Gaussian process instead of the random forest
        }
        scenario = smac.Scenario(
            self._cs,
            deterministic=True,
            n_trials=n_trials,
            seed=seed if seed is not None else -1,
            output_directory=self._dir,
        )
        self._smac = facades[facade](
            scenario, target_function=_never_called, overwrite=True, logging_level=40
        )
        self._asked: dict[int, Any] = {}  # trial number -> SMAC's TrialInfo
        self._told: set[int] = set()
        self._exhausted = False  # SMAC found no new config: the rest come from _untried
        self._seed = seed

    def plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        self._tell_finished(study)
        if trial.system_attrs.get("fixed_params"):  # a queued retry: its config is set
            return None
        info = None if self._exhausted else self._ask()
        if info is None:
            return self._decode(self._untried(study, trial.number))
        self._asked[trial.number] = info
        return self._decode(info.config)

    def _ask(self) -> Any:
        from smac.main.exceptions import ConfigurationSpaceExhaustedException

        try:
            with warnings.catch_warnings():  # numpy's "mean of empty slice" in SMAC's model
                warnings.simplefilter("ignore", RuntimeWarning)
                return self._smac.ask()
        except ConfigurationSpaceExhaustedException:
            self._exhausted = True
            return None

    def _untried(self, study: Study, number: int) -> Any:
        """A config no trial of the study has: a neighbour of the best trial's, else a
        random one; in a space with every config tried, a random one."""
        from ConfigSpace.util import get_one_exchange_neighbourhood

        trials = study.get_trials(deepcopy=False)
        tried = [self._encode(t.params) for t in trials if t.params]
        seed = (self._seed or 0) * 100_003 + number  # the same proposal for the same trial
        candidates: list[Any] = []
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if done:
            sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
            best = min(done, key=lambda t: sign * float(t.value or 0.0))
            incumbent = self._configuration(best.params)
            if incumbent is not None:
                candidates += list(get_one_exchange_neighbourhood(incumbent, seed=seed))
        self._cs.seed(seed)
        candidates += self._cs.sample_configuration(UNTRIED_DRAWS)
        return next((c for c in candidates if dict(c) not in tried), candidates[-1])

    def _encode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        codec = self._codec
        return {k: codec.to_smac(k, v) for k, v in params.items() if k in codec.distributions}

    def _configuration(self, params: Mapping[str, Any]) -> Any:
        """The ConfigSpace configuration of a trial's params (None: not of this space)."""
        from ConfigSpace import Configuration

        try:
            return Configuration(self._cs, values=self._encode(params))
        except Exception:  # a config from an older space: not SMAC's to learn
            return None

    def _decode(self, config: Any) -> dict[str, Any]:
        return {name: self._codec.from_smac(name, v) for name, v in dict(config).items()}

    def _tell_finished(self, study: Study) -> None:
        from smac.runhistory.dataclasses import TrialInfo, TrialValue

        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.number in self._told or t.value is None:
                continue
            self._told.add(t.number)
            info = self._asked.pop(t.number, None)
            if info is None:  # not proposed by this SMAC: describe it to SMAC
                config = self._configuration(t.params)
                if config is None:
                    continue
                info = TrialInfo(config=config, seed=0)
            self._smac.tell(info, TrialValue(cost=sign * float(t.value)))


def _never_called(config: Any, seed: int = 0) -> float:
    raise RuntimeError("kubetune runs SMAC's trials itself (ask/tell)")
