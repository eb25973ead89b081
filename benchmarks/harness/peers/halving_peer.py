"""scikit-learn's ``HalvingRandomSearchCV`` on the scikit-learn grid (its home ground).

Its resource is the number of training samples, not a step count: a candidate evaluated on
``n`` samples costs ``n / N`` of a full evaluation, ``N`` being its last round's samples.
It draws ``trials x 3`` candidates (as the other early-stopping peers get 3x the trials)
and keeps its own order of rounds; the trace lists its evaluations at the full resource
as the candidates that count, with the cost of every round spread over them. Finish times
are not observable per candidate: ``end_s`` is the share of the wall time its cost reached.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from harness.peers.base import Peer
from harness.problems import Problem
from harness.problems.sklearn_grid import CV_FOLDS, SklearnProblem
from harness.spaces import scipy_distributions
from harness.trace import RunTrace, TrialRecord

# models whose space names are the estimator's own keyword arguments
_DIRECT = frozenset({"knn", "svm", "dt", "rf", "ada"})


class HalvingPeer(Peer):
    early_stopping = True

    def __init__(self, name: str) -> None:
        self.name = name

    def supports(self, problem: Problem) -> bool:
        return isinstance(problem, SklearnProblem) and problem.model in _DIRECT

    def trials_for(self, problem: Problem, trials: int) -> int:
        return max(1, round(trials * self.mf_factor))

    def run(self, problem: Problem, trials: int, seed: int, workdir: Path) -> RunTrace:
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingRandomSearchCV

        assert isinstance(problem, SklearnProblem)
        estimator = problem.estimator()
        prefix = f"{estimator.steps[-1][0]}__" if hasattr(estimator, "steps") else ""
        x, y = problem.data()
        search = HalvingRandomSearchCV(
            estimator,
            scipy_distributions(problem.space, prefix),
            n_candidates=trials,
            factor=3,
            cv=CV_FOLDS,
            scoring=problem.scoring,
            random_state=seed,
            n_jobs=1,
            refit=False,
            error_score=np.nan,
        )
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search.fit(x, y)
        wall = time.perf_counter() - started
        res = search.cv_results_
        # "exhaust" sizes the rounds so the last one uses as many samples as it can: the
        # candidates of that round are the ones evaluated at (nearly) the full resource
        n_full = max(res["n_resources"])
        costs = np.asarray(res["n_resources"], dtype=float) / n_full
        total = float(costs.sum())
        last = max(res["iter"])
        full = [i for i, it in enumerate(res["iter"]) if it == last]
        records = []
        spent = 0.0
        per_full = total / max(len(full), 1)
        for i in full:
            spent += per_full
            score = float(res["mean_test_score"][i])
            value = min(1.0 - score, 2.0) if np.isfinite(score) else None
            records.append(TrialRecord(value=value, cost=per_full, end_s=wall * spent / total))
        return RunTrace(
            problem=problem.name, peer=self.name, seed=seed, trials=records, wall_s=wall
        )
