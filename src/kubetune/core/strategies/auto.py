"""The ``auto`` strategy: a rule backed by ``benchmarks/strategies.py`` (10 seeds per problem,
95% bootstrap CIs, paired against optuna's default TPE; the tables are in the README and
``benchmarks/strategies-results.md``).

1. A finite space whose every config fits in ``max_trials``          -> ``grid``
   (nothing can do better than trying everything).
2. ``max_trials`` at most 200 and either at most 8 searched dimensions (a per-layer
   parameter counts once per possible layer) of any kind -- numeric, categorical,
   conditional, per-layer -- or at most 12 in a space with no conditional or per-layer
   parameter, with or without a fidelity:
   a. every parameter categorical                                     -> ``gp``
      fitted on the ranks of the values (their normal scores,
      ``core/strategies/rank_gp.py``) instead of the values: with one diverged
      configuration the standardised values squeeze the good ones together, and optuna's
      plain GP was significantly worse than its TPE on HPOLib naval propulsion
      (``benchmarks/run.py --standard``; in-process, benchmarks/rank-gp-results.md: 8.8e-5
      with values, 3.2e-5 with ranks, 3.7e-5 for TPE, 10 seeds). On the 12 tabular
      problems of ``run.py --standard`` (all categorical-only) it is significantly better
      than optuna's TPE on 3 and never significantly worse.
   b. a space with numbers                                            -> ``portfolio``
      GP and TPE share the trials, each one handed to the member whose trials improved
      the best value most often (``core/strategies/portfolio.py``, ``allocation:
      credit``). GP alone was better than optuna's TPE on 9 of the 11 ``strategies.py``
      problems of this branch and never significantly worse there, but in ``run.py
      --standard`` it was significantly worse on sklearn-dt-wine (normalized 1.45
      against 1.00, p = 0.042: a decision tree's cross-validated error is a step function
      of its parameters and the GP settles on a plateau). GP and TPE in turn (``allocation:
      turns``, the rule before credit) were still worse there at 20 seeds (1.28 against
      1.01, p = 0.036), the GP's half of the trials spent on the plateau. Credited
      (``run.py --standard``, 20 seeds, re-run 2026-12-08): sklearn-dt-wine 1.10 against
      1.01 (p = 0.51); branin, hartmann6 and the torch MLP still won (the GP earns most
      turns on the smooth functions). The portfolio also replaces a proposal of a config
      already tried (``deduplicate``): on the k-NN cells (120 configs) only 51 to 76 of 100
      trials had been distinct, and sklearn-knn-wine became a win (1.00 against 1.02,
      p = 0.0018). With the other branches: better than optuna's TPE on 9 of the 30
      problems, worse on none.
   The limits bound GP's cost: one GP suggestion took 0.1-0.3 s on 2 cores at 100
   trials, growing with the trials.
3. Anything larger                                                    -> ``tpe``
   (multivariate; grouped per branch in a conditional space): optuna's TPE itself, so
   never worse than it (cond12, cond12 under Hyperband, sphere4 with 300 trials: not
   significantly different). The trial limit is about GP's cost: on sphere4 with 300
   trials GP was better (3 seeds) but took 414 s per search against TPE's 11.5 s.

Why 12 flat dimensions but 8 conditional ones: the first rule stopped GP at 8 dimensions
everywhere. The flat 12-dimensional problems then showed GP far ahead of TPE (sphere12:
0.0135 against 9.46; rosen12: 79.8 against 309; sphere12 under Hyperband: 0.203 against
3.21), while on the conditional 12-dimensional one GP was significantly *worse* than TPE
(cond12: 1.78 against 0.878; optuna's GP sees an inactive parameter as a fixed value, so
every branch blurs the others), so the limit was raised for flat spaces only. 12 is the
largest flat space measured; beyond it ``auto`` keeps TPE.

BOHB is not picked with a fidelity: it was significantly worse than optuna's TPE under
Hyperband on sphere4 (3.13 against 0.216 after 150 trials) and sphere12 (34.2 against
3.21 after 200), as were evolution and RL; GP and TPE with Hyperband's pruning were the
best there. The scheduler ``auto`` is ``asha`` whenever a fidelity (budget parameter) is
given and the fidelity guard watches its cuts, ``hyperband`` where nothing does and for
BOHB, and ``none`` without a fidelity (see :func:`choose_scheduler` for the evidence).
(``curve``, learning-curve extrapolation, is never chosen by ``auto``: it is for long,
smooth curves; see the README.) With ``fidelity.kind: data_fraction`` the scheduler
``auto`` is ``asha``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetune.core.space import SearchSpace
from kubetune.core.strategies.rank_gp import only_categorical

GP_MAX_DIMS = 8  # any space
GP_MAX_FLAT_DIMS = 12  # a space without conditional or per-layer parameters
GP_MAX_TRIALS = 200
# kept for code written against the previous rule
GP_MAX_PARAMS = GP_MAX_DIMS

_GP_EVIDENCE = (
    "in benchmarks/strategies.py GP beat optuna's TPE on 9 of the 11 problems it is picked"
    " on and was never significantly worse"
)

_RANKS_REASON = (
    "; every parameter is categorical, so the GP fits the values' ranks (normal scores), not"
    " the values: on the 12 tabular benchmarks the plain GP was significantly worse than"
    " optuna's TPE where a few configs diverge (HPOLib naval propulsion)"
)

_PORTFOLIO_REASON = (
    "; a space with numbers, so GP and TPE share the trials, each to the member whose trials"
    " improved the best value most often (strategy portfolio): on a plateau objective"
    " (benchmarks/run.py --standard, sklearn-dt-wine) GP alone, and GP and TPE in turn, were"
    " significantly worse than optuna's TPE; credited, the GP loses its turns there (not"
    " significantly different from TPE at 20 seeds) and keeps them where it leads"
)

# why a fidelity changes the scheduler, not the strategy (what ``kubetune validate`` adds)
_FIDELITY_EVIDENCE = (
    "; with a fidelity the scheduler prunes (auto: ASHA with the fidelity guard) and {name}"
    " models final values, not"
    " BOHB: BOHB was significantly worse than optuna's TPE under Hyperband on sphere4-hb and"
    " sphere12-hb"
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
    choice = _model_based(space, max_trials)
    if has_fidelity:
        return StrategyChoice(
            choice.name, choice.reason + _FIDELITY_EVIDENCE.format(name=choice.name)
        )
    return choice


def _model_based(space: SearchSpace, max_trials: int | None) -> StrategyChoice:
    dims = searched_dimensions(space)
    flat = not space.is_conditional
    dims_limit = GP_MAX_FLAT_DIMS if flat else GP_MAX_DIMS
    kind = "a space without conditional parameters" if flat else "a conditional/per-layer space"
    if dims <= dims_limit and max_trials is not None and max_trials <= GP_MAX_TRIALS:
        small = (
            f"{dims} searched dimensions (<= {dims_limit} in {kind}) and"
            f" max_trials={max_trials} (<= {GP_MAX_TRIALS}): {_GP_EVIDENCE}"
        )
        if only_categorical(space):
            return StrategyChoice("gp", small + _RANKS_REASON)
        return StrategyChoice("portfolio", small + _PORTFOLIO_REASON)
    limit = (
        f"{dims} searched dimensions (> {dims_limit} in {kind})"
        if dims > dims_limit
        else f"max_trials={max_trials} (> {GP_MAX_TRIALS}, or none: GP would be too slow)"
    )
    if space.is_conditional:
        return StrategyChoice("tpe", f"{limit}: multivariate TPE, grouped per branch")
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
