"""Peers by name: kubetune's variants and the tools its users would otherwise pick.

A new kubetune strategy or scheduler to compare is one line in ``KUBETUNE_VARIANTS``
(the name in the report -> strategy, scheduler, where it applies); a new tool is a
:class:`Peer` subclass and one line in ``PEERS``. ``STRATEGY_PEERS`` is every kubetune
strategy, one peer each (``run.py --strategies``); each runs on the problems it applies
to (``Peer.supports``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from harness.peers.base import Peer
from harness.peers.darts_peer import DartsPeer
from harness.peers.halving_peer import HalvingPeer
from harness.peers.kubetune_peer import KubetunePeer
from harness.peers.optuna_peers import OptunaPeer
from harness.peers.ray_peer import RayTunePeer, ensure_ray

__all__ = [
    "DEFAULT_KUBETUNE",
    "PEERS",
    "RANDOM",
    "STRATEGY_PEERS",
    "TPE",
    "Peer",
    "ensure_ray",
    "make_peer",
]

DEFAULT_KUBETUNE = "kubetune"  # the default strategy (auto), what the targets are about
TPE = "optuna-tpe"  # optuna's default sampler, the yardstick of the targets
RANDOM = "optuna-random"  # the normalized score's 1 and the time-to-target baseline

_FIDELITY = {"fidelity_only": True}
# report name -> (kubetune strategy, scheduler on problems with a fidelity, where it applies).
# A strategy alone runs every trial to the end (scheduler none), so the strategies compare
# as samplers; BOHB and Hyperband are fidelity methods and run only where there is one.
KUBETUNE_VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    DEFAULT_KUBETUNE: ("auto", "auto", {}),
    "kubetune-tpe": ("tpe", "none", {}),
    "kubetune-random": ("random", "none", {}),
    "kubetune-grid": ("grid", "none", {"finite_only": True}),
    "kubetune-gp": ("gp", "none", {}),
    "kubetune-portfolio": ("portfolio", "none", {}),  # GP and TPE in turn
    "kubetune-cmaes": ("cmaes", "none", {}),
    "kubetune-qmc": ("qmc", "none", {}),
    "kubetune-evolution": ("evolution", "none", {}),
    "kubetune-rl": ("rl", "none", {}),
    "kubetune-smac": ("smac", "none", {"needs": ("smac",)}),
    "kubetune-bohb": ("bohb", "hyperband", _FIDELITY),
    "kubetune-hyperband": ("random", "hyperband", _FIDELITY),  # Li et al.'s: random configs
}
# every kubetune strategy, one peer each (DARTS: on problems with an architecture plan)
STRATEGY_PEERS: tuple[str, ...] = (*KUBETUNE_VARIANTS, "kubetune-darts")


def _kubetune(
    name: str, strategy: str, scheduler: str, where: dict[str, Any]
) -> Callable[[], Peer]:
    return lambda: KubetunePeer(name, strategy, scheduler, **where)


PEERS: dict[str, Callable[[], Peer]] = {
    **{name: _kubetune(name, *variant) for name, variant in KUBETUNE_VARIANTS.items()},
    "kubetune-darts": DartsPeer,
    TPE: lambda: OptunaPeer(TPE, lambda seed: optuna.samplers.TPESampler(seed=seed)),
    RANDOM: lambda: OptunaPeer(RANDOM, lambda seed: optuna.samplers.RandomSampler(seed=seed)),
    "optuna-tpe-hyperband": lambda: OptunaPeer(
        "optuna-tpe-hyperband", lambda seed: optuna.samplers.TPESampler(seed=seed), pruned=True
    ),
    "random-2x": lambda: OptunaPeer(
        "random-2x", lambda seed: optuna.samplers.RandomSampler(seed=seed), budget_factor=2.0
    ),
    "ray-tune": lambda: RayTunePeer("ray-tune"),
    "ray-tune-asha": lambda: RayTunePeer("ray-tune-asha", asha=True),
    "sklearn-halving": lambda: HalvingPeer("sklearn-halving"),
}


def make_peer(name: str) -> Peer:
    if name not in PEERS:
        raise KeyError(f"peer: unknown '{name}' (known: {', '.join(PEERS)})")
    return PEERS[name]()
