"""What a built-in trainer is: fit a model for one config and budget, save and load it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kubetune.core.trial import Reporter
from kubetune.data.dataset import Dataset


class NullReporter:
    """Reporter used where nobody listens (final training)."""

    def report(self, step: int, value: float) -> None:
        return None


class TrainedModel(ABC):
    """A fitted model that can predict and be stored without pickle."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices (classification) or values (regression)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        """Class probabilities, or None when the model has none."""
        return None

    @abstractmethod
    def save(self, directory: Path) -> list[Path]:
        """Write the model's files into ``directory``; return them."""

    def save_training_state(self, directory: Path) -> list[Path]:
        """Write, next to ``save``'s files, what training needs to go on exactly where it
        stopped (optimizer moments, random generators); return those files. Checkpoints
        call it, the model repository does not. The default keeps nothing."""
        return []


class Trainer(ABC):
    """A trainer kind named in the spec's ``trainer.kind``."""

    kind: str

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    #: Names this trainer accepts in the spec's ``trainer:`` section besides ``kind``;
    #: None accepts any (a trainer that passes options on).
    known_options: ClassVar[frozenset[str] | None] = None

    #: True when ``continue_fit`` works: a saved model of the same config trains on to a
    #: larger budget (a config promoted to the next rung of the looping pipeline).
    can_continue: ClassVar[bool] = False
    #: Params that fix the model's shape: a pbt member cannot change them while it trains.
    structural_params: ClassVar[frozenset[str]] = frozenset()

    @property
    def can_resume(self) -> bool:
        """True when ``fit_from`` works: the trainer can start from a saved model of its
        kind (what ``strategy: pbt`` and weight inheritance need)."""
        return False

    #: True when ``fit`` takes ``parent=``, the folder of a saved model to start from
    #: (weight inheritance), and the trainer's options ask for it.
    @property
    def inherits_weights(self) -> bool:
        return False

    def check_data(self, data: Dataset, param_names: Collection[str]) -> None:
        """Refuse, before any trial runs, a trainer that cannot work on ``data`` with the
        search space's ``param_names`` (an estimator for the other task, a param it does
        not take, tabular data for an image model). Raise
        :class:`kubetune.errors.SpecError` naming the field. The default accepts all."""
        return None

    def check(self, *, fidelity_param: str | None, base_dir: Path) -> None:
        """Refuse, before any trial runs, options that would fail every trial.

        ``fidelity_param`` is the spec's ``fidelity.param`` (None without a fidelity);
        ``base_dir`` is the spec's folder. Raise :class:`kubetune.errors.SpecError` naming the
        field (``trainer.<option>: ...``). The default accepts everything.
        """
        return None

    @abstractmethod
    def fit(
        self,
        params: dict[str, Any],
        data: Dataset,
        *,
        budget: int | None,
        seed: int,
        reporter: Reporter,
        metric: str,
        final: bool = False,
    ) -> TrainedModel:
        """Train one config.

        ``budget`` is the fidelity (epochs, trees, ...) or None for the trainer's default.
        When ``final`` is False, train on ``X_train`` and report the validation ``metric``
        (a name such as "accuracy" or "rmse") after every budget step through ``reporter``,
        letting :class:`optuna.TrialPruned` propagate. When ``final`` is True, train on train +
        validation and report nothing.
        Raise :class:`kubetune.errors.InvalidConfigError` for a config that cannot work.
        """

    def fit_from(
        self,
        parent: Path,
        params: dict[str, Any],
        data: Dataset,
        *,
        budget: int | None,
        seed: int,
        reporter: Reporter,
        metric: str,
        final: bool = False,
    ) -> TrainedModel:
        """``fit`` starting from the model saved in ``parent`` (only called when
        ``can_resume`` is True)."""
        raise NotImplementedError(f"{self.kind} does not inherit weights")

    def continue_fit(
        self,
        checkpoint: Path,
        trained: int,
        params: dict[str, Any],
        data: Dataset,
        *,
        budget: int,
        seed: int,
        reporter: Reporter,
        metric: str,
    ) -> TrainedModel:
        """Train the model saved in ``checkpoint`` (``params`` trained for ``trained`` budget
        units) on to ``budget``: only the remaining units, reporting steps ``trained + 1``
        to ``budget`` (only called when ``can_continue`` is True)."""
        raise NotImplementedError(f"{self.kind} cannot continue a saved model")

    @abstractmethod
    def load(self, directory: Path) -> TrainedModel:
        """Load a model written by ``TrainedModel.save``."""


class StartsFromParent(Trainer):
    """A trainer whose ``fit`` takes ``parent=`` (the folder of a saved model to start
    from): ``fit_from`` is that call, written once for every such trainer."""

    def fit_from(
        self,
        parent: Path,
        params: dict[str, Any],
        data: Dataset,
        *,
        budget: int | None,
        seed: int,
        reporter: Reporter,
        metric: str,
        final: bool = False,
    ) -> TrainedModel:
        fit: Any = self.fit  # the subclass's fit, which takes parent=
        return fit(
            params,
            data,
            budget=budget,
            seed=seed,
            reporter=reporter,
            metric=metric,
            final=final,
            parent=Path(parent),
        )
