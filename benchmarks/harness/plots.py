"""PNG figures for RESULTS.md (matplotlib, headless): anytime curves and scaling curves."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from harness import metrics
from harness.trace import RunTrace

DPI = 72  # keeps each PNG well under 300 KB


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _median_curve(
    traces: list[RunTrace], grid: np.ndarray, optimum: float, axis: str
) -> np.ndarray:
    """Median over seeds of the simple regret (best so far - optimum) on ``grid``."""
    rows = []
    for t in traces:
        xs, best = metrics.anytime(t, axis)
        idx = np.searchsorted(np.asarray(xs), grid, side="right") - 1
        vals = np.where(idx >= 0, np.asarray([*best, math.nan])[np.maximum(idx, 0)], np.nan)
        rows.append(vals - optimum)
    if not rows:
        return grid * np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # before a peer's first completed trial
        return np.nanmedian(np.asarray(rows, dtype=float), axis=0)


def anytime(traces: list[RunTrace], summary: dict[str, Any], axis: str, path: Path) -> None:
    plt = _pyplot()
    groups: dict[str, dict[str, list[RunTrace]]] = defaultdict(lambda: defaultdict(list))
    for t in traces:
        if t.error is None and t.trials:
            groups[t.problem][t.peer].append(t)
    names = [n for n in summary["problems"] if n in groups]
    if not names:
        return
    peers = sorted({p for per in groups.values() for p in per})
    colors = {peer: plt.get_cmap("tab10")(i % 10) for i, peer in enumerate(peers)}
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        optimum = summary["problems"][name]["optimum"]
        per_peer = groups[name]
        end = max(
            (
                (sum(r.cost for r in t.trials) / t.full_cost) if axis == "cost" else t.wall_s
                for ts in per_peer.values()
                for t in ts
            ),
            default=1.0,
        )
        grid = np.linspace(0, max(end, 1e-9), 200)
        curves = {peer: _median_curve(ts, grid, optimum, axis) for peer, ts in per_peer.items()}
        top = max((np.nanmax(c) for c in curves.values() if np.isfinite(c).any()), default=1.0)
        floor = max(top, 1e-12) * 1e-4  # a regret of 0 (the best known) sits on the floor
        for peer, curve in sorted(curves.items()):
            ax.plot(
                grid,
                np.maximum(curve, floor),
                label=peer,
                linewidth=1.2,
                color=colors[peer],
                linestyle="--" if peer.startswith(("random", "optuna-random")) else "-",
            )
        ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("full evaluations" if axis == "cost" else "wall s", fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    all_labels: dict[str, Any] = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            all_labels.setdefault(label, h)
    fig.legend(list(all_labels.values()), list(all_labels), loc="lower center", ncol=5, fontsize=7)
    fig.suptitle(
        "median regret (best so far - optimum or best known) vs "
        + ("cost" if axis == "cost" else "wall time"),
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def scaling(data: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    # CPU time where measured: the controller's own cost, which the target reads
    key = "cpu_ms_per_trial" if all("cpu_ms_per_trial" in r for r in data["rows"]) else None
    for row in data["rows"]:
        costs = row[key or "ms_per_trial"]
        sizes = [int(n) for n in costs]
        style = "-" if row["loop"] == "kubetune" else "--"
        ax.plot(
            sizes,
            list(costs.values()),
            style,
            marker="o",
            label=f"{row['loop']} / {row['storage']}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trials in the study")
    ax.set_ylabel(f"controller {'CPU ' if key else ''}ms per trial")
    ax.set_title("controller cost per no-op trial vs study size", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def overhead(data: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    names = [n for n, v in data["peers"].items() if not math.isnan(v["ms_per_trial"])]
    values = [data["peers"][n]["ms_per_trial"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.barh(names, values)
    ax.set_xscale("log")
    ax.set_xlabel("ms per no-op trial (log)")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
