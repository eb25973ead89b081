"""Test helpers shipped with kubetune: conformance suites and fakes for pluggable kinds.

A new executor or object store proves it keeps the contract by running the suite here,
the way optuna's storages share ``optuna.testing``. ``k8s_emulator`` (a simulated
Kubernetes API server) and ``kubelet`` (a simulated kubelet and Job controller) let the
Kubernetes executor run without a cluster.
"""
