"""A warm worker builds the trial function (and so loads the data) once per spec: what
``kubetune worker`` relies on through ``prepare_trial``'s cache."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from kubetune.cli.trial_cmd import FunctionCache, prepare_trial
from kubetune.core.trial import TrialRequest
from kubetune.steps.trial import BuiltinTrial

SPEC: dict[str, Any] = {
    "name": "cache",
    "objective": {"metric": "accuracy"},
    "data": {"source": "sklearn:iris"},
    "search_space": {"C": {"type": "float", "low": 0.1, "high": 1.0}},
}


def _write(tmp_path: Path, name: str, request: TrialRequest) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(request.to_dict()))
    return str(path)


def test_the_trial_function_is_built_once_per_spec(tmp_path: Path) -> None:
    base = TrialRequest(study="cache", number=0, params={"C": 0.5}, seed=0, spec=SPEC,
                        spec_dir=str(tmp_path))  # fmt: skip
    cache: FunctionCache = {}
    _, _, first = prepare_trial(_write(tmp_path, "a", base), cache=cache)
    _, _, again = prepare_trial(_write(tmp_path, "b", replace(base, number=1)), cache=cache)
    assert isinstance(first, BuiltinTrial) and again is first
    other_spec = {**SPEC, "data": {"source": "sklearn:wine"}}
    _, _, other = prepare_trial(_write(tmp_path, "c", replace(base, spec=other_spec)), cache=cache)
    assert other is not first and len(cache) == 2
    # without a cache (``kubetune trial``): a new one each time
    _, _, fresh = prepare_trial(_write(tmp_path, "d", base))
    assert fresh is not first
