"""RESULTS.md: the tables, the target / measured / verdict table and links to the plots."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from harness import metrics
from harness.peers import RANDOM, STRATEGY_PEERS, TPE
from harness.problems import PROBLEMS
from harness.targets import Verdict

NOISE_NOTE = (
    "Timings were taken on a 2-core machine shared with other work (about 8 engineers' builds"
    " and tests): wall-time figures and per-trial overheads are noisy, ratios measured in the"
    " same run are what to read; search-quality figures in budget steps or trials do not"
    " depend on the load."
)

DEGENERATE = "degenerate: random's median is the optimum"


# How to read figures that look odd; true of every run, so written once here.
READING_NOTES = (
    "Peers given the same seed draw the same first configs (optuna's TPE and kubetune's"
    " strategies start with random trials seeded like the RandomSampler), so on small budgets"
    " several peers tie: e.g. on torch-mlp-digits in quick mode (6 full evaluations) every peer"
    " reaches the target on its second full evaluation, and the time-to-target speed-up is 1.0"
    " for all.",
    "Wall-clock speed-ups on the synthetic and tabular problems compare optuna's in-process"
    " loop (microseconds per trial for a formula or a table look-up) with kubetune's worker"
    " processes (started once per run, about 2 s here) and its default sampler's own time (a"
    " Gaussian process for small numeric spaces): they say what a search of free trials costs,"
    " not what a search of real training costs. Read them on the scikit-learn grid and the"
    " torch MLP.",
    "A speed-up in budget steps counts the steps every trial ran, pruned ones included;"
    " quality is read at the same cost for every peer (see Search quality).",
)


def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def _score(s: dict[str, Any] | None) -> str:
    if s is None:
        return ""
    lo, hi = s["ci"]
    ci = f" [{_f(lo)}, {_f(hi)}]" if not math.isnan(lo) else ""
    return f"{_f(s['mean'])}{ci}"


def render(
    *,
    env: dict[str, Any],
    command: str,
    mode: dict[str, Any],
    verdicts: list[Verdict],
    quality: dict[str, Any] | None,
    quality_info: dict[str, Any] | None,
    orchestration: dict[str, Any] | None,
    scaling: dict[str, Any] | None,
    plots: dict[str, str],
    report_dir: Path | None = None,
) -> str:
    """The report's Markdown; ``report_dir``: where it will be written (for its links)."""
    out = [
        "# kubetune benchmark results",
        "",
        f"- date: {env['date']}",
        f"- machine: {env['machine']}; load average at start {_load(env)}",
        f"- Python {env['python']}; commit {env['commit']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"- command: `{command}`",
        f"- mode: {mode['name']}: {mode['seeds']} seeds; trial budgets (full evaluations)"
        f" {mode['trials']}; "
        + (
            f"Ray Tune on {', '.join(mode['ray_problems']) or 'no problem'}"
            f" with {mode['ray_seeds']} seed(s)"
            if any(p.startswith("ray-tune") for p in mode["peers"])
            else "Ray Tune not run for search quality (it is in the overhead table)"
        ),
        "",
        NOISE_NOTE,
        "",
    ]
    if mode["seeds"] < 10:
        out += [
            f"**This is a `{mode['name']}` run: {mode['seeds']} seeds, not the >= 10 the issue"
            " asks for, and smaller trial budgets and study sizes.** Confidence intervals are"
            " wide and significance tests have little power; `python benchmarks/run.py` (full)"
            " runs 10 seeds.",
            "",
        ]
    elif mode["name"] != "full":
        ran = len(quality_info["problems"]) if quality_info else len(mode["problems"])
        out += [
            f"**This is a `{mode['name']}` run: search quality on {ran} problems**, fewer than"
            f" the {FULL_PROBLEMS} of `python benchmarks/run.py` (full), which takes many hours"
            " on 2 cores; the problems are listed under Search quality.",
            "",
        ]
    out += ["## Targets (issue 11)", ""]
    out += _table(
        ["target", "measured", "verdict", "note"],
        [[v.target, v.measured, v.verdict, v.note] for v in verdicts],
    )
    out += ["Reading notes:", "", *[f"- {note}" for note in READING_NOTES], ""]
    if quality is not None and quality_info is not None:
        out += _quality(quality, quality_info)
        out += _every_strategy(quality, quality_info)
    if orchestration is not None:
        out += _orchestration(orchestration)
    if scaling is not None:
        out += _scaling(scaling)
    out += _auto_evidence(AUTO_EVIDENCE, report_dir or AUTO_EVIDENCE.parent)
    if plots:
        out += ["## Plots", ""]
        out += [f"- [{title}]({path})" for title, path in plots.items()]
        out += [""]
        out += [f"![{title}]({path})" for title, path in plots.items()]
        out += [""]
    return "\n".join(out)


#: every registered problem: what the full mode runs
FULL_PROBLEMS = len(PROBLEMS)

#: what ``benchmarks/strategies.py`` wrote: the table behind ``auto``'s strategy rule
AUTO_EVIDENCE = Path(__file__).resolve().parents[1] / "strategies-results.md"


def _auto_evidence(path: Path, report_dir: Path) -> list[str]:
    """The strategy benchmark's tables (10 seeds, paired CIs against optuna's TPE), as the
    section that backs ``auto``: a separate script (it runs sampler against sampler on
    cheap problems), quoted here so that one file holds every figure a claim rests on."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    link = Path(os.path.relpath(path, report_dir.resolve())).as_posix()
    body = lines[1:] if lines and lines[0].startswith("# ") else lines
    return [
        "## The rule behind `auto` (benchmarks/strategies.py)",
        "",
        f"Quoted from [`{path.name}`]({link}), written by `benchmarks/strategies.py`"
        " (its own command and date are in the text):",
        "",
        *[("#" + line if line.startswith("#") else line) for line in body],
        "",
    ]


def _load(env: dict[str, Any]) -> str:
    load = env.get("load_average")
    return "unknown" if not load else " / ".join(f"{x:.2f}" for x in load) + " (1/5/15 min)"


def _seed_note(q: dict[str, Any]) -> list[str]:
    """Which cells have another number of seeds than most (runs added with --first-seed)."""
    counts = {
        (name, peer): s["seeds"]
        for name, p in q["problems"].items()
        for peer, s in p["peers"].items()
    }
    if len(set(counts.values())) <= 1:
        return []
    usual = Counter(counts.values()).most_common(1)[0][0]
    others = [f"{name} / {peer}: {n}" for (name, peer), n in counts.items() if n != usual]
    return [f"Seeds per cell: {usual}, except {'; '.join(others)}.", ""]


def _quality(q: dict[str, Any], info: dict[str, Any]) -> list[str]:
    peers = sorted({p for prob in q["problems"].values() for p in prob["peers"]}, key=_order)
    out = [
        "## Search quality",
        "",
        "Normalized score per problem: 0 = the optimum (or the best value any run found, marked"
        " *best known*), 1 = the median of random search (optuna's RandomSampler) at the same"
        " budget; mean over seeds [95 % bootstrap CI]. Quality is read at the same cost for every"
        " peer: N full evaluations (the trial budget of the problem's family); peers that stop"
        " trials early get 3x the trials and are read when their cost reaches N full"
        " evaluations; `random-2x` is read at 2N.",
        "",
    ]
    rows = []
    for name, p in q["problems"].items():
        opt = _f(p["optimum"], 4) + ("" if p["optimum_known"] else " (best known)")
        cells = [_score(p["peers"].get(peer)) for peer in peers]
        if p["degenerate"]:
            cells = [DEGENERATE] + [""] * (len(peers) - 1)
        rows.append([name, opt, *cells])
    out += _table(["problem", "optimum", *peers], rows)
    out += _seed_note(q)
    out += ["### Per family (mean of the problems' mean scores [CI over every problem x seed])", ""]
    fam_rows = [
        [family, *[_score(per.get(peer)) for peer in peers]]
        for family, per in q["families"].items()
    ]
    out += _table(["family", *peers], fam_rows)
    out += [
        "### Average rank (1 = best; each problem ranks the peers that ran on it by mean score)",
        "",
    ]
    ranks = sorted(q["ranks"].items(), key=lambda kv: kv[1])
    out += _table(["peer", "average rank"], [[p, _f(r)] for p, r in ranks])
    out += ["### kubetune (default strategy) vs optuna's default TPE, per problem", ""]
    cmp_rows = [
        [n, _f(p["kubetune_vs_tpe"]["p_value"], 3), p["kubetune_vs_tpe"]["verdict"]]
        for n, p in q["problems"].items()
        if "kubetune_vs_tpe" in p
    ]
    out += _table(["problem", "Mann-Whitney p (two-sided)", "kubetune is"], cmp_rows)
    out += _ttt(q, peers)
    out += ["### Median wall seconds per run (start-up included; Ray's `ray.init` excluded)", ""]
    wall_rows = [
        [n, *[_f(p["peers"][peer]["wall_s"], 1) if peer in p["peers"] else "" for peer in peers]]
        for n, p in q["problems"].items()
    ]
    out += _table(["problem", *peers], wall_rows)
    notes = []
    if info.get("unavailable_peers"):
        notes += [f"- peer {k}: {v}" for k, v in info["unavailable_peers"].items()]
    notes += [f"- skipped problem {s}" for s in info.get("skipped", [])]
    notes += [f"- run failed: {e}" for e in q.get("errors", [])]
    if notes:
        out += ["### Not run / failed", "", *notes, ""]
    return out


def _every_strategy(q: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """Every kubetune strategy on every problem: a run with ``--strategies`` has them all;
    a run with only the default and TPE variants gets no such section."""
    present = {p for prob in q["problems"].values() for p in prob["peers"]}
    if not present & (set(STRATEGY_PEERS) - {"kubetune", "kubetune-tpe"}):
        return []
    strategies = list(STRATEGY_PEERS)  # every one, n/a where it does not apply
    out = [
        "## Every strategy on every problem",
        "",
        "Each kubetune strategy as its own peer (`kubetune` is the default, `auto`), mean"
        " normalized score over seeds [95 % bootstrap CI] (0 = optimum, 1 = random search's"
        " median), read at the same cost as in *Search quality*; `better`/`worse`: lower/higher"
        " than optuna's default TPE (`optuna-tpe`, Mann-Whitney two-sided p < 0.05 on the best"
        " values over seeds). `n/a`: the strategy does not apply to the problem (`grid`: finite"
        " spaces only; `bohb`, `hyperband`: problems with a fidelity; `darts`: the torch MLP,"
        " whose architecture it relaxes); `-`: it applies but did not run (see *Not run*).",
        "",
    ]
    rows = []
    for name, p in q["problems"].items():
        if p["degenerate"]:  # no score: every peer would read 0 / 0
            rows.append([name, DEGENERATE] + [""] * (len(strategies) + 1))
            continue
        tpe = p["peers"].get(TPE)
        cells = [_score(tpe), _score(p["peers"].get(RANDOM))]
        for peer in strategies:
            s = p["peers"].get(peer)
            if s is None:
                cells.append("-" if _applies(peer, p) else "n/a")
                continue
            verdict = ""
            if tpe is not None:
                verdict = metrics.compare(s["best"], tpe["best"]).verdict
            cells.append(_score(s) + ("" if verdict in ("", "same") else f" {verdict}"))
        rows.append([name, *cells])
    out += _table(["problem", TPE, RANDOM, *strategies], rows)
    missing = [f"- peer {k}: {v}" for k, v in info.get("unavailable_peers", {}).items()]
    if missing:
        out += ["Not run:", "", *missing, ""]
    return out


def _applies(peer: str, problem: dict[str, Any]) -> bool:
    """Whether a strategy missing from a problem's results would have run there."""
    if peer in ("kubetune-bohb", "kubetune-hyperband"):
        return bool(problem.get("max_budget"))
    return peer not in ("kubetune-grid", "kubetune-darts")  # decided by the space itself


def _ttt(q: dict[str, Any], peers: list[str]) -> list[str]:
    mf = {n: p for n, p in q["problems"].items() if p.get("max_budget") and "ttt" in p}
    if not mf:
        return []
    out = [
        "### Time to target on the multi-fidelity problems",
        "",
        "Target: the loss random search reaches in 3 of 4 seeds (75th percentile of its final"
        " bests). Median cost to reach it, in full evaluations (budget steps / max steps; for the"
        " digits MLP: epochs / 9), speed-up = random's (or TPE's) median / the peer's median;"
        " `never` / `not reached`: the peer's median run did not reach it within its trials;"
        " `>=`: the baseline's median run did not reach it, its whole budget is counted (a lower"
        " bound). Wall-clock speed-up in the last column.",
        "",
    ]
    rows = []
    for name, p in mf.items():
        for peer in peers:
            row = p["ttt"]["peers"].get(peer)
            if row is None:
                continue
            rows.append(
                [
                    name,
                    peer,
                    _f(row["median_cost"], 1),
                    _speed(row, "random", "cost"),
                    _speed(row, "tpe", "cost"),
                    _speed(row, "random", "wall"),
                ]
            )
    out += _table(
        ["problem", "peer", "median cost", "x vs random", "x vs TPE", "x vs random (wall)"], rows
    )
    return out


def _speed(row: dict[str, Any], base: str, axis: str) -> str:
    value = row.get(f"speedup_vs_{base}_{axis}")
    if value is None:
        return ""
    if value == 0:
        return "not reached"
    bound = ">= " if row.get(f"speedup_vs_{base}_{axis}_lower_bound") else ""
    return f"{bound}{_f(value, 1)}"


def _orchestration(o: dict[str, Any]) -> list[str]:
    out = [
        "## Per-trial overhead (no-op trials, 2 in flight)",
        "",
        f"kubetune and optuna: {o['noop_trials']} trials x {o['noop_repeats']} repeats (medians);"
        f" Ray Tune and kfp.local: {o['peer_trials']} trials. kubetune's worker start-up"
        f" ({_f(o['kubetune_startup_s'])} s, once per run), `ray.init` and `kfp.local.init`"
        " are left out.",
        "",
    ]
    rows = [[name, _f(d["ms_per_trial"], 3), d.get("error", "")] for name, d in o["peers"].items()]
    out += _table(["loop", "ms per trial", "note"], rows)
    out += [
        "### Fixed-duration trials on 2 workers"
        " (efficiency = ideal / wall, ideal = total trial time / 2)",
        "",
    ]
    out += _table(
        ["trial s", "trials", "ideal s", "wall s", "efficiency", "overhead ms per trial"],
        [
            [
                _f(s["trial_s"]),
                str(s["trials"]),
                _f(s["ideal_s"]),
                _f(s["wall_s"]),
                f"{s['efficiency'] * 100:.1f} %",
                _f(s["overhead_ms_per_trial"], 1),
            ]
            for s in o["sleep"]
        ],
    )
    return out


def _scaling(s: dict[str, Any]) -> list[str]:
    sizes = [str(n) for n in s["sizes"]]
    out = [
        "## Controller cost per trial vs study size",
        "",
        "ms per no-op trial over the last 10 % of trials before each size (kubetune: the loop with"
        " an in-process executor, so only the controller is timed; optuna: `study.optimize`;"
        " random sampler, one run per loop and storage), in wall time and in the controller"
        " process's CPU time. Wall time includes each journal append's and SQLite commit's"
        " fsync and the database round trips, and whatever else the machine does; CPU time is"
        " the controller's own work (for PostgreSQL, the server's work is not in it), and it is"
        " what the target's verdict reads."
        + f" Journal and SQLite files on: {s.get('files_on', 'unknown')}."
        + (
            ""
            if s["postgresql"]
            else " PostgreSQL: not in this measurement (needs KUBETUNE_TEST_POSTGRES_URL)."
        ),
        "",
    ]
    has_cpu = all("cpu_ms_per_trial" in r for r in s["rows"])
    header = ["storage", "loop", *[f"wall {int(n):,}" for n in sizes], "wall growth"]
    if has_cpu:
        header += [*[f"CPU {int(n):,}" for n in sizes], "CPU growth"]
    rows = []
    for r in s["rows"]:
        row = [r["storage"], r["loop"], *[_f(r["ms_per_trial"][n], 3) for n in sizes]]
        row.append(_f(r["growth"]))
        if has_cpu:
            row += [*[_f(r["cpu_ms_per_trial"][n], 3) for n in sizes], _f(r["cpu_growth"])]
        rows.append(row)
    out += _table(header, rows)
    return out


def _order(peer: str) -> tuple[int, str]:
    known = [
        "kubetune",
        "kubetune-tpe",
        "optuna-tpe",
        "optuna-random",
        "random-2x",
        "optuna-tpe-hyperband",
        "ray-tune",
        "ray-tune-asha",
        "sklearn-halving",
        *STRATEGY_PEERS,
    ]
    return (known.index(peer) if peer in known else len(known), peer)
