"""Kubeflow Pipelines: components, the two pipeline forms, compile and local runs.

- :mod:`~kubetune.kfp.tasks`: what each component's body calls (plain Python, no kfp
  import, so it is tested without KFP);
- :mod:`~kubetune.kfp.components`: the ``@dsl.component`` definitions (kfp v2 SDK);
- :mod:`~kubetune.kfp.pipelines`: the looping and controller pipelines built from a spec;
- :mod:`~kubetune.kfp.local_run`: running a compiled pipeline through ``kfp.local``.

Everything but ``tasks`` imports ``kfp`` (the ``kfp`` extra).
"""

from __future__ import annotations

from kubetune import __version__

__all__ = ["DEFAULT_IMAGE"]

#: The project image every component runs in; the tag follows the kubetune version. A
#: pipeline's ``image`` parameter (default: ``kubetune pipeline compile --image``) overrides it.
DEFAULT_IMAGE = f"ghcr.io/kubetune/kubetune:{__version__}"
