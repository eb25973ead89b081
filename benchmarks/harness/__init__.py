"""The benchmark harness: problems, peers, metrics and the report, run by ``benchmarks/run.py``.

Every pluggable kind has one registry and one small base class:

* ``problems.PROBLEMS``: name -> :class:`problems.Problem` (an objective, its space, its
  optimum or none, and a fidelity or none);
* ``peers.PEERS``: name -> :class:`peers.Peer` (a search tool that runs a problem for a
  number of trials and a seed and hands back a :class:`trace.RunTrace`).

A new kubetune strategy is one line in ``peers.KUBETUNE_VARIANTS``.
"""
