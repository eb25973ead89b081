"""How much each mode runs: ``smoke`` (CI, seconds), ``quick`` (~10 min), ``standard``
(the targets' 10 seeds on a part of the problems: an hour or two on 2 cores), ``full``
(every problem, 10 seeds: many hours).

``--strategies`` turns any of them into a run of every kubetune strategy (one peer each)
next to optuna's TPE and random search, on the same problems and seeds
(:func:`every_strategy`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.peers import RANDOM, STRATEGY_PEERS, TPE
from harness.problems import SUITES


@dataclass(frozen=True)
class Mode:
    name: str
    problems: tuple[str, ...]
    peers: tuple[str, ...]
    seeds: int
    #: trial budget in full evaluations, per problem family
    trials: dict[str, int]
    #: Ray Tune costs about a second per trial: it runs on these problems, with these seeds
    ray_problems: tuple[str, ...]
    ray_seeds: int
    #: controller scaling: study sizes (no-op trials) and storages
    scaling_sizes: tuple[int, ...]
    #: None: every storage found (PostgreSQL only with KUBETUNE_TEST_POSTGRES_URL)
    scaling_storages: tuple[str, ...] | None
    #: per-trial overhead: no-op trials and repeats; fixed-duration trials: (seconds, trials)
    noop_trials: int
    noop_repeats: int
    sleep_runs: tuple[tuple[float, int], ...]
    #: peers compared on per-trial overhead: trials each
    peer_overhead_trials: int
    #: seeds run are ``first_seed .. first_seed + seeds - 1`` (``--first-seed``: add seeds to
    #: an earlier run with ``--merge`` without redoing its own)
    first_seed: int = 0

    def seed_range(self, seeds: int | None = None) -> range:
        return range(self.first_seed, self.first_seed + (self.seeds if seeds is None else seeds))

    def trials_for(self, family: str) -> int:
        return self.trials.get(family, self.trials["default"])


_ALL_PEERS = (
    "kubetune",
    "kubetune-tpe",
    "optuna-tpe",
    "optuna-random",
    "optuna-tpe-hyperband",
    "random-2x",
    "ray-tune",
    "ray-tune-asha",
    "sklearn-halving",
)

MODES: dict[str, Mode] = {
    "smoke": Mode(
        name="smoke",
        problems=SUITES["smoke"],
        peers=(
            "kubetune",
            "optuna-tpe",
            "optuna-random",
            "random-2x",
            "optuna-tpe-hyperband",
            "ray-tune",
            "sklearn-halving",
        ),
        seeds=2,
        trials={"default": 6},
        ray_problems=(),
        ray_seeds=0,
        scaling_sizes=(10, 30),
        scaling_storages=("memory", "journal"),
        noop_trials=20,
        noop_repeats=1,
        sleep_runs=((0.01, 6),),
        peer_overhead_trials=0,
    ),
    "quick": Mode(
        name="quick",
        problems=SUITES["quick"],
        peers=tuple(p for p in _ALL_PEERS if p != "kubetune-tpe"),
        seeds=3,
        trials={"default": 20, "sklearn": 15, "torch": 6},
        ray_problems=("branin-mf",),
        ray_seeds=1,
        scaling_sizes=(50, 500),
        scaling_storages=None,
        noop_trials=300,
        noop_repeats=3,
        sleep_runs=((0.01, 100), (0.1, 30), (1.0, 10)),
        peer_overhead_trials=20,
    ),
    "full": Mode(
        name="full",
        problems=SUITES["full"],
        peers=_ALL_PEERS,
        seeds=10,
        trials={"default": 100, "torch": 30},
        ray_problems=SUITES["quick"],
        ray_seeds=3,
        scaling_sizes=(100, 1_000, 10_000),
        scaling_storages=None,
        noop_trials=1_000,
        noop_repeats=5,
        sleep_runs=((0.01, 400), (0.1, 100), (1.0, 40)),
        peer_overhead_trials=50,
    ),
}
# ``full``'s budgets and overhead set on a part of the problems, without the peers that add
# least to the targets (random-2x, kubetune-tpe: a third of the run), Ray on one problem
MODES["standard"] = replace(
    MODES["full"],
    name="standard",
    problems=SUITES["standard"],
    peers=tuple(p for p in _ALL_PEERS if p not in ("random-2x", "kubetune-tpe")),
    ray_problems=("branin-mf",),
    ray_seeds=1,
)


def every_strategy(mode: Mode) -> Mode:
    """``mode``'s problems, seeds and budgets with every kubetune strategy as a peer (each
    runs where it applies: grid on finite spaces, BOHB and Hyperband with a fidelity, DARTS
    on the torch MLP), next to the score's yardsticks, optuna's TPE and random search."""
    return replace(
        mode,
        name=f"{mode.name} --strategies",
        peers=(TPE, RANDOM, *STRATEGY_PEERS),
        ray_problems=(),
        ray_seeds=0,
    )


def resolve(
    name: str,
    seeds: int | None = None,
    only: tuple[str, ...] = (),
    *,
    strategies: bool = False,
    first_seed: int = 0,
) -> Mode:
    """The mode, with ``--strategies``, ``--seeds``, ``--first-seed`` and ``--only``
    (problem or peer names, or families) applied."""
    mode = MODES[name]
    if strategies:
        mode = every_strategy(mode)
    if seeds is not None:
        mode = replace(mode, seeds=seeds, ray_seeds=min(mode.ray_seeds, seeds))
    if first_seed:
        mode = replace(mode, first_seed=first_seed)
    if only:
        problems = _pick(only, mode.problems, SUITES["full"])
        peers = _pick(only, mode.peers, (*_ALL_PEERS, *STRATEGY_PEERS))
        unknown = [o for o in only if not any(_matches(n, o) for n in (*problems, *peers))]
        if unknown:
            raise KeyError(f"--only: no problem or peer named {', '.join(unknown)}")
        mode = replace(mode, problems=problems or mode.problems, peers=peers or mode.peers)
    return mode


def _pick(only: tuple[str, ...], own: tuple[str, ...], every: tuple[str, ...]) -> tuple[str, ...]:
    """Names matching ``only`` among the mode's own; a pattern that matches none of them is
    looked up among every registered name (to add a problem or peer to a quick run)."""
    picked = [n for n in own if any(_matches(n, o) for o in only)]
    for o in only:
        if not any(_matches(n, o) for n in own):
            picked += [n for n in every if _matches(n, o) and n not in picked]
    return tuple(picked)


def _matches(name: str, pattern: str) -> bool:
    return name == pattern or name.startswith(pattern + "-")
