# syntax=docker/dockerfile:1
# kubetune's one image: the controller (a KFP task or a Job), every KFP component and every
# trial or worker pod run the same `kubetune` command from it.
#
# The base is the official CUDA runtime image of the torch version constraints.txt pins, so
# GPU trial pods need only the node's NVIDIA driver. Pinned by tag and digest; the digest is
# the one public projects record for this tag. No Docker engine was available where this
# file was written: check it with `docker buildx imagetools inspect <tag>` when you bump it.
# A CPU-only or controller-only image: --build-arg BASE_IMAGE=python:3.12-slim
#   --build-arg KUBETUNE_EXTRAS=s3,k8s,kfp,postgres,grpc (no torch).
# checkov:skip=CKV_DOCKER_7: FROM names this ARG, which is pinned by version tag and digest
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime@sha256:6acf597eeb8e376a96580dde4952f37cc017fef732bb40bfc73f28f25e3f64b4

# --- build: the kubetune wheel; setuptools and the sources stay in this stage ------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG KUBETUNE_EXTRAS=all
LABEL org.opencontainers.image.title="kubetune" \
      org.opencontainers.image.description="Hyperparameter and architecture search on Kubernetes and Kubeflow Pipelines" \
      org.opencontainers.image.licenses="Apache-2.0"
# The base's Python is the system one (PEP 668 marks it externally managed); this image is
# that Python's only user, so installing into it is what we want.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1

# constraints.txt pins every dependency (`make constraints` regenerates it) so a rebuild gets
# the versions the tests ran with; its torch==X also accepts the base's X+cuNNN build, which
# pip therefore keeps. The wheel comes in through a bind mount: no layer holds it.
COPY constraints.txt /tmp/constraints.txt
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    set -- /wheels/kubetune-*.whl \
    && pip install --constraint /tmp/constraints.txt "$1[${KUBETUNE_EXTRAS}]" \
    && rm /tmp/constraints.txt \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin kubetune

# Pods run it with a restricted securityContext (non-root, read-only root filesystem): caches
# and scratch files go to HOME, which the pod templates mount as an emptyDir.
USER 10001
WORKDIR /home/kubetune
# checkov:skip=CKV_DOCKER_2: Kubernetes ignores Docker HEALTHCHECK; trials are batch pods and the controller is followed through its Job or KFP task
ENTRYPOINT ["kubetune"]
CMD ["--help"]
