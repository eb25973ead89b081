"""The ``auto`` strategy: a rule backed by ``benchmarks/strategies.py`` (10 seeds per problem,
95% bootstrap CIs, paired against optuna's default TPE; the table is in the README).

1. A finite space whose every config fits in ``max_trials``          -> ``grid``
   (nothing can do better than trying everything).
2. At most 8 searched dimensions (a per-layer parameter counts once per possible layer)
   and ``max_trials`` at most 200, whatever their kinds: numeric, categorical,
   conditional, per-layer, with or without a fidelity                 -> ``gp``
   Evidence: better than optuna's TPE on 6 of the 8 benchmark problems (sphere4, mixed,
   nas, svc, knn, sphere4 under Hyperband), not significantly different on the other 2
   (rosen6, mlp-arch), never significantly worse. The limits bound its cost: one GP
   suggestion took 0.1-0.3 s on 2 cores, growing with the trials.
3. Anything larger                                                    -> ``tpe``
   (multivariate; grouped per branch in a conditional space): optuna's TPE itself, so
   never worse than it; no benchmark problem here is that large.

BOHB is not picked with a fidelity: on sphere4 under Hyperband it was significantly worse
than TPE (3.13 against 0.216 after 150 trials), as were evolution and RL; GP and TPE with
Hyperband's pruning were the best there. The scheduler ``auto`` is ``hyperband`` whenever
a fidelity (budget parameter) is given, and ``none`` otherwise. (``curve``, learning-curve
extrapolation, is never chosen by ``auto``: it is for long, smooth curves; see the README.)
With ``fidelity.kind: data_fraction`` the scheduler ``auto`` is ``asha``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetune.core.space import SearchSpace

GP_MAX_DIMS = 8
GP_MAX_TRIALS = 200
# kept for code written against the previous rule
GP_MAX_PARAMS = GP_MAX_DIMS

_GP_EVIDENCE = (
    "in benchmarks/strategies.py GP beat optuna's TPE on 6 of 8 problems and was never"
    " significantly worse"
)


@dataclass(frozen=True)
class StrategyChoice:
    name: str
    reason: str


def searched_dimensions(space: SearchSpace) -> int:
    """Flat parameters a sampler models: per-layer ones once per possible layer."""
    return sum(not d.single() for d in space.distributions().values())


def choose_strategy(
    space: SearchSpace, max_trials: int | None, *, has_fidelity: bool = False
) -> StrategyChoice:
    size = space.cardinality(cap=max_trials if max_trials is not None else 10_000)
    if size is not None and max_trials is not None and size <= max_trials:
        return StrategyChoice("grid", f"all {size} configs fit in max_trials={max_trials}")
    dims = searched_dimensions(space)
    if dims <= GP_MAX_DIMS and max_trials is not None and max_trials <= GP_MAX_TRIALS:
        return StrategyChoice(
            "gp",
            f"{dims} searched dimensions (<= {GP_MAX_DIMS}) and max_trials={max_trials}"
            f" (<= {GP_MAX_TRIALS}): {_GP_EVIDENCE}",
        )
    limit = (
        f"{dims} searched dimensions (> {GP_MAX_DIMS})"
        if dims > GP_MAX_DIMS
        else f"max_trials={max_trials} (> {GP_MAX_TRIALS}, or none: GP would be too slow)"
    )
    if space.is_conditional:
        return StrategyChoice("tpe", f"{limit}, conditional space: multivariate grouped TPE")
    return StrategyChoice("tpe", f"{limit}: multivariate TPE")


def choose_scheduler(
    scheduler: str,
    has_fidelity: bool,
    *,
    data_fraction: bool = False,
    strategy: str | None = None,
    guarded: bool = True,
) -> str:
    """``auto`` with a fidelity: ASHA where the fidelity guard watches its cuts, Hyperband
    where nothing does (``guarded=False``: ``fidelity.guard: false``, the looping pipeline's
    synchronous rounds) and for BOHB, which is defined on Hyperband's brackets.

    Evidence (``python benchmarks/run.py --standard``, 10 seeds, 100 full evaluations, TPE
    as the strategy; benchmarks/RESULTS.md): median full evaluations to random search's
    target on branin-mf, hartmann6-mf and branin-misleading: ASHA with the guard 8.4, 6.8
    and 30.7; Hyperband with the guard 17.7, 12.6 and 21.7; random search 74.5, 81.0 and
    74.5. ASHA spends nothing on Hyperband's full-budget brackets, which only pay off when
    the low budget misleads, and the guard catches that case; without the guard Hyperband
    is the safer cut (optuna's TPE with Hyperband never reached the target on
    branin-misleading).
    """
    if scheduler != "auto":
        return scheduler
    if not has_fidelity:
        return "none"
    if data_fraction:  # each rung refits from scratch: Hyperband's full-budget brackets cost most
        return "asha"
    if strategy == "bohb" or not guarded:
        return "hyperband"
    return "asha"
