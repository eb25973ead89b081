"""benchmarks/rank_gp.py runs and writes a row per problem with every sampler's bests."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rank_gp.py"


def test_rank_gp_benchmark_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("kubetune_bench_rank_gp", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "rank_gp.json"
    assert (
        module.main(["--problems", "branin", "--seeds", "2", "--trials", "12", "--json", str(out)])
        == 0
    )
    data = json.loads(out.read_text())
    row = data["problems"]["branin"]
    assert set(row) == {"gp (values)", "gp (ranks)", "optuna-tpe", "p_ranks_vs_values"}
    for label in ("gp (values)", "gp (ranks)", "optuna-tpe"):
        bests = row[label]["bests"]
        assert len(bests) == 2 and all(math.isfinite(b) and b >= 0.3978 for b in bests)
    assert 0.0 <= row["p_ranks_vs_values"] <= 1.0
