"""Compiling the KFP components and pipelines, and the checked-in YAML staying in sync."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import components, dsl

from kubetune.cli.main import main
from kubetune.core.spec import load_spec
from kubetune.core.sync_schedule import max_rounds
from kubetune.kfp import DEFAULT_IMAGE
from kubetune.kfp.build import EXAMPLE_SPEC, drifted
from kubetune.kfp.components import COMPONENTS
from kubetune.kfp.pipelines import FORMS, PipelineOptions, compile_pipeline, gpu_tasks
from kubetune.steps.search import normalize_objective

ROOT = Path(__file__).resolve().parents[1]
PARAMETERS = {"spec", "model_repo", "data_uri", "max_trials", "timeout", "image", "force"}


def _docs(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def _tasks(pipeline: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every task of every DAG (the root, loops, conditions)."""
    dags = [pipeline["root"], *pipeline["components"].values()]
    for dag in dags:
        yield from dag.get("dag", {}).get("tasks", {}).items()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each form of the example spec, compiled once (compiling takes seconds)."""
    out = tmp_path_factory.mktemp("compiled")
    return {form: _compile(out, form) for form in FORMS}


def _compile(tmp_path: Path, form: str, options: PipelineOptions | None = None) -> Path:
    spec = normalize_objective(load_spec(ROOT / EXAMPLE_SPEC))
    return compile_pipeline(spec, form, tmp_path / f"{form}.yaml", options)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", FORMS)
def test_a_pipeline_compiles_with_its_parameters_and_no_credentials(
    compiled: dict[str, Path], form: str
) -> None:
    pipeline, platform = _docs(compiled[form])
    params = pipeline["root"]["inputDefinitions"]["parameters"]
    assert set(params) == PARAMETERS
    assert params["image"]["defaultValue"] == DEFAULT_IMAGE
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secrets = {
        (s["secretName"], k["envVar"])
        for e in executors.values()
        for s in e.get("secretAsEnv", [])
        for k in s["keyToEnv"]
    }
    assert ("kubetune-s3", "AWS_SECRET_ACCESS_KEY") in secrets
    assert ("kubetune-postgresql", "KUBETUNE_STORAGE") in secrets


@pytest.mark.parametrize("form", FORMS)
def test_trial_and_training_tasks_request_a_gpu_and_nothing_else_does(
    compiled: dict[str, Path], form: str
) -> None:
    path = compiled[form]
    requested = gpu_tasks(path)
    assert set(requested.values()) == {"nvidia.com/gpu"}
    # exec-trial, exec-trial-2, ... exec-train-9: one executor per round in the YAML
    kinds = {re.sub(r"-\d+$", "", name.removeprefix("exec-")) for name in requested}
    assert "train" in kinds
    assert ("trial" in kinds) == (form == "looping")
    assert not kinds & {"retrieve", "retune", "suggest", "record", "search", "evaluate", "push"}
    platform = _docs(path)[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in requested:  # GPU nodes are tainted: the GPU tasks tolerate it
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
            platform[name]["tolerations"]
        )


def test_gpu_settings_come_from_the_compile_options(tmp_path: Path) -> None:
    assert gpu_tasks(_compile(tmp_path, "looping", PipelineOptions(gpus=0))) == {}
    options = PipelineOptions(gpus=2, node_selector={"pool": "a100"}, tolerations=())
    path = _compile(tmp_path, "controller", options)
    pipeline, platform = _docs(path)
    train = pipeline["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert train["accelerator"]["resourceCount"] == "2"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert k8s["nodeSelector"] == {"labels": {"pool": "a100"}}
    assert "tolerations" not in k8s


def test_the_looping_pipeline_unrolls_the_rounds_the_spec_needs(
    compiled: dict[str, Path],
) -> None:
    pipeline, _ = _docs(compiled["looping"])
    spec = load_spec(ROOT / EXAMPLE_SPEC)
    names = [name for name, _ in _tasks(pipeline)]
    rounds = max_rounds(spec)
    assert sum(n == "suggest" or n.startswith("suggest-") for n in names) == rounds
    assert sum(n == "record" or n.startswith("record-") for n in names) == rounds
    for name, task in _tasks(pipeline):
        if name.startswith("for-loop"):
            assert task["iteratorPolicy"]["parallelismLimit"] == spec.limits.parallel
        if name.startswith(("trial", "record")):
            assert task["retryPolicy"]["maxRetryCount"] == 2
        if not name.startswith(("for-loop", "condition")):
            assert not task.get("cachingOptions", {}).get("enableCache"), name


def test_every_component_loads_from_its_checked_in_yaml() -> None:
    for name in COMPONENTS:
        component = components.load_component_from_file(
            str(ROOT / "components" / name / "component.yaml")
        )
        assert component.name == name
        container = component.pipeline_spec.deployment_spec["executors"][f"exec-{name}"]
        assert container["container"]["image"] == DEFAULT_IMAGE
        command = " ".join(container["container"]["command"])
        assert "pip install" not in command  # runs in the image, installs nothing
        assert f"from kubetune.kfp.tasks import {name} as run" in command


def test_checked_in_yaml_matches_the_python_definitions() -> None:
    assert drifted(ROOT) == {}, "run `make kfp-yaml` to regenerate"


def test_drift_is_found(tmp_path: Path) -> None:
    for folder in ("components", "pipelines"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    path = tmp_path / "components" / "trial" / "component.yaml"
    path.write_text(
        path.read_text().replace("set_retry", "x").replace("- --executor_input", "- --x")
    )
    (tmp_path / "pipelines" / "controller.yaml").unlink()
    assert set(drifted(tmp_path)) == {
        "components/trial/component.yaml",
        "pipelines/controller.yaml",
    }


def test_compile_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.yaml"
    spec = str(ROOT / EXAMPLE_SPEC)
    assert main(["pipeline", "compile", spec, "--form", "controller", "-o", str(out)]) == 0
    assert "compiled the controller pipeline of 'iris-hgb'" in capsys.readouterr().out
    assert gpu_tasks(out) == {"exec-train": "nvidia.com/gpu"}
    image = "registry.example/kubetune:dev"
    assert (
        main(
            ["pipeline", "compile", spec, "--form", "controller", "-o", str(out), "--image", image]
        )
        == 0
    )
    params = _docs(out)[0]["root"]["inputDefinitions"]["parameters"]
    assert params["image"]["defaultValue"] == image
    assert main(["pipeline", "compile", spec, "-o", str(out), "--toleration", "gpu:Never"]) == 2
    assert "--toleration: expected key[=value][:effect]" in capsys.readouterr().err
    median = tmp_path / "median.yaml"
    median.write_text(
        (ROOT / EXAMPLE_SPEC).read_text().replace("scheduler: hyperband", "scheduler: median")
    )
    assert main(["pipeline", "compile", str(median), "-o", str(out)]) == 2
    assert "controller form" in capsys.readouterr().err
    assert main(["pipeline", "compile", str(median), "--form", "controller", "-o", str(out)]) == 0


@pytest.mark.parametrize("form", FORMS)
def test_everything_after_the_retune_task_runs_only_when_it_says_go(
    compiled: dict[str, Path], form: str
) -> None:
    """Re-tuning: the search, the final steps and push sit under If(decision == 'go'); the
    Else branch only says why; push gets the KFP run id, name and schedule time."""
    pipeline, _ = _docs(compiled[form])
    assert set(pipeline["root"]["dag"]["tasks"]) == {"retrieve", "retune", "condition-branches-1"}
    branches = pipeline["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    conditions = {t["triggerPolicy"]["condition"]: n for n, t in branches.items()}
    go = conditions["inputs.parameter_values['pipelinechannel--retune-decision'] == 'go'"]
    stop = conditions["!(inputs.parameter_values['pipelinechannel--retune-decision'] == 'go')"]
    assert set(pipeline["components"][f"comp-{stop}"]["dag"]["tasks"]) == {"skipped"}
    under_go = set(pipeline["components"][f"comp-{go}"]["dag"]["tasks"])
    assert ("search" in under_go) == (form == "controller")
    assert ("suggest" in under_go) == (form == "looping")
    pushes = [t for n, t in _tasks(pipeline) if n == "push" or n.startswith("push-")]
    assert pushes
    for push in pushes:
        params = push["inputs"]["parameters"]
        given = {
            k: params[k]["runtimeValue"]["constant"]
            for k in ("run_id", "run_name", "schedule_time")
        }
        assert given == {
            "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            "run_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            "schedule_time": dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
        }


def test_a_kfp_patch_release_is_not_drift(tmp_path: Path) -> None:
    """Only the compiler's version stamp differs: not drift; anything else on that line is."""
    for folder in ("components", "pipelines"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    path = tmp_path / "components" / "trial" / "component.yaml"
    text = path.read_text()
    assert "\nsdkVersion: kfp-" in text
    path.write_text(re.sub(r"(?m)^sdkVersion: kfp-\S+$", "sdkVersion: kfp-9.9.9", text))
    assert drifted(tmp_path) == {}
    path.write_text(re.sub(r"(?m)^sdkVersion: kfp-\S+$", "sdkVersion: other-2.17.0", text))
    assert set(drifted(tmp_path)) == {"components/trial/component.yaml"}
