"""Peers by name: kubetune's variants and the tools its users would otherwise pick.

A new kubetune strategy or scheduler to compare is one line in ``KUBETUNE_VARIANTS``
(the name in the report -> strategy, scheduler); a new tool is a :class:`Peer` subclass and
one line in ``PEERS``.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from harness.peers.base import Peer
from harness.peers.halving_peer import HalvingPeer
from harness.peers.kubetune_peer import KubetunePeer
from harness.peers.optuna_peers import OptunaPeer
from harness.peers.ray_peer import RayTunePeer, ensure_ray

__all__ = ["DEFAULT_KUBETUNE", "PEERS", "RANDOM", "TPE", "Peer", "ensure_ray", "make_peer"]

DEFAULT_KUBETUNE = "kubetune"  # the default strategy (auto), what the targets are about
TPE = "optuna-tpe"  # optuna's default sampler, the yardstick of the targets
RANDOM = "optuna-random"  # the normalized score's 1 and the time-to-target baseline

# report name -> (kubetune strategy, scheduler on problems with a fidelity)
KUBETUNE_VARIANTS: dict[str, tuple[str, str]] = {
    DEFAULT_KUBETUNE: ("auto", "auto"),
    "kubetune-tpe": ("tpe", "none"),
}


def _kubetune(name: str, strategy: str, scheduler: str) -> Callable[[], Peer]:
    return lambda: KubetunePeer(name, strategy, scheduler)


PEERS: dict[str, Callable[[], Peer]] = {
    **{name: _kubetune(name, *variant) for name, variant in KUBETUNE_VARIANTS.items()},
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
