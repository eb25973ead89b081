"""One source of truth each: strategy and scheduler names come from their registries, metric
names and directions from ``core.metrics``, trainer-specific checks from the trainer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from kubetune.core import metrics, schedulers
from kubetune.core.curve_pruner import CurvePruner
from kubetune.core.fidelity_guard import FidelityGuard, GuardedHyperbandPruner
from kubetune.core.plan import plan_search
from kubetune.core.spec import parse_spec
from kubetune.core.strategies import factory
from kubetune.errors import KubetuneError, SpecError
from kubetune.trainers import get_trainer

BASE: dict[str, Any] = {
    "name": "exp",
    "objective": {"metric": "val_loss"},
    "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
}


def _spec(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


# ----------------------------------------------------------------- strategies and schedulers


def test_a_registered_strategy_is_a_valid_spec_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError, match=r"strategy\.name: unknown strategy 'mine' \(known: auto,"):
        parse_spec(_spec(strategy={"name": "mine"}))

    def build(ctx: factory.SamplerContext, opts: dict[str, Any]) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=ctx.seed)

    monkeypatch.setitem(factory.BUILDERS, "mine", (build, frozenset()))
    plan = plan_search(parse_spec(_spec(strategy={"name": "mine"})))
    assert plan.strategy == "mine"
    assert isinstance(plan.sampler, optuna.samplers.RandomSampler)


def test_a_registered_scheduler_is_a_valid_spec_name(monkeypatch: pytest.MonkeyPatch) -> None:
    fidelity = {"param": "epochs", "max": 9, "scheduler": "mine"}
    with pytest.raises(SpecError) as err:
        parse_spec(_spec(fidelity=fidelity))
    assert (
        "fidelity.scheduler: unknown scheduler 'mine'"
        " (known: auto, hyperband, asha, median, none, curve)" in str(err.value)
    )

    def build(r: schedulers.FidelityRange) -> optuna.pruners.BasePruner:
        return optuna.pruners.PercentilePruner(25.0, n_warmup_steps=r.min_resource)

    monkeypatch.setitem(schedulers.BUILDERS, "mine", build)
    plan = plan_search(parse_spec(_spec(fidelity=fidelity)))
    assert plan.scheduler == "mine"
    assert isinstance(plan.pruner, optuna.pruners.PercentilePruner)


@pytest.mark.parametrize(
    ("name", "pruner"),
    [
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("asha", optuna.pruners.SuccessiveHalvingPruner),
        ("median", optuna.pruners.MedianPruner),
        ("none", optuna.pruners.NopPruner),
        ("curve", CurvePruner),
    ],
)
def test_every_scheduler_name_builds_its_pruner(name: str, pruner: type) -> None:
    assert name in schedulers.SCHEDULER_NAMES
    plain = schedulers.build_pruner(
        name, min_resource=1, max_resource=9, reduction_factor=3, guard=False
    )
    assert type(plain) is pruner
    # the rank-based ones come with the fidelity guard by default (Hyperband as a subclass,
    # so optuna's samplers still see a HyperbandPruner)
    built = schedulers.build_pruner(name, min_resource=1, max_resource=9, reduction_factor=3)
    guarded = {"hyperband": GuardedHyperbandPruner, "asha": FidelityGuard, "median": FidelityGuard}
    if name in guarded:
        assert type(built) is guarded[name]
        assert isinstance(getattr(built, "inner", built), pruner)
    else:
        assert type(built) is pruner


def test_build_pruner_names_the_known_schedulers() -> None:
    with pytest.raises(SpecError, match=r"fidelity\.scheduler: unknown scheduler 'pbt' \(known"):
        schedulers.build_pruner("pbt", min_resource=1, max_resource=9, reduction_factor=3)


# ----------------------------------------------------------------------------- metric names


@pytest.mark.parametrize(
    ("metric", "split", "expected"),
    [
        ("val_accuracy", "test", "test_accuracy"),
        ("accuracy", "val", "val_accuracy"),
        ("test_rmse", "val", "val_rmse"),
        ("train_loss", "test", "test_loss"),
    ],
)
def test_for_split_swaps_the_prefix(metric: str, split: str, expected: str) -> None:
    assert metrics.for_split(metric, split) == expected


def test_unprefixed_and_validation_key() -> None:
    assert metrics.unprefixed({"val_f1": 0.5, "val_accuracy": 0.9}, metrics.VAL) == {
        "f1": 0.5,
        "accuracy": 0.9,
    }
    assert metrics.validation_key("accuracy") == "val_accuracy"
    assert metrics.validation_key("val_rmse") == "val_rmse"
    with pytest.raises(SpecError, match=r"objective\.metric: 'test_rmse' cannot drive"):
        metrics.validation_key("test_rmse")


def test_directions_agree_between_builtin_and_inferred_names() -> None:
    for names in metrics.METRICS_BY_TASK.values():
        for name in names:
            for prefix in metrics.SPLIT_PREFIXES[:2]:
                assert metrics.metric_direction(prefix + name) == metrics.infer_direction(
                    prefix + name
                )
    assert metrics.infer_direction("validation_loss") == "minimize"
    with pytest.raises(KubetuneError, match="valid metrics"):
        metrics.canonical_metric("loss")  # inferable, but no built-in trainer computes it


def test_trainers_metrics_are_the_core_ones() -> None:
    from kubetune.trainers import metrics as trainer_metrics

    assert trainer_metrics.METRICS_BY_TASK is metrics.METRICS_BY_TASK
    assert trainer_metrics.metric_direction is metrics.metric_direction


def test_core_metrics_and_spec_import_neither_sklearn_nor_torch() -> None:
    code = (
        "import sys, kubetune.core.metrics, kubetune.core.spec, kubetune.core.plan;"
        " bad = {'sklearn', 'torch'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------- trainer.check hooks


def test_sklearn_trainer_needs_budget_param_with_a_fidelity(tmp_path: Path) -> None:
    trainer = get_trainer("sklearn", {"estimator": "sklearn.linear_model.LogisticRegression"})
    trainer.check(fidelity_param=None, base_dir=tmp_path)  # no fidelity: fine
    with pytest.raises(SpecError, match=r"^trainer\.budget_param: required with a fidelity"):
        trainer.check(fidelity_param="epochs", base_dir=tmp_path)
    trainer = get_trainer(
        "sklearn",
        {"estimator": "sklearn.linear_model.SGDClassifier", "budget_param": "max_iter"},
    )
    trainer.check(fidelity_param="epochs", base_dir=tmp_path)


def test_custom_trainer_imports_its_function_from_the_spec_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "kt_check_hook_mod.py").write_text("def train(**kwargs):\n    return None\n")
    trainer = get_trainer("custom", {"function": "kt_check_hook_mod:train"})
    trainer.check(fidelity_param=None, base_dir=tmp_path)
    assert str(tmp_path) in sys.path
    missing = get_trainer("custom", {"function": "kt_check_hook_mod:nope"})
    with pytest.raises(KubetuneError, match="no such function"):
        missing.check(fidelity_param=None, base_dir=tmp_path)


def test_torch_trainer_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulates an image built without the torch extra.
    monkeypatch.setitem(sys.modules, "torch", None)
    for module in [m for m in sys.modules if m.startswith("kubetune.trainers.torch")]:
        monkeypatch.delitem(sys.modules, module)
    for kind in ("torch-mlp", "torch-cnn"):
        with pytest.raises(KubetuneError) as err:
            get_trainer(kind)
        assert str(err.value) == (
            f"trainer.kind: {kind} needs the torch extra: pip install 'kubetune[torch]'"
        )
