"""The image every trial pod (and KFP component) runs by default: the project image tagged
with this kubetune version, so a controller never starts trials of another release."""

from __future__ import annotations

from kubetune import __version__

__all__ = ["DEFAULT_IMAGE", "IMAGE_REPOSITORY"]

IMAGE_REPOSITORY = "ghcr.io/kubetune/kubetune"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
