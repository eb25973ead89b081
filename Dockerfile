# kubetune runtime image: the same `kubetune` command runs the controller and each trial pod.
# Build the CPU image by default; pass --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
# (or another CUDA wheel index) for GPU trial pods.
# Smaller images pick extras (see pyproject.toml): a controller or scikit-learn-only image
# carries no torch with --build-arg KUBETUNE_EXTRAS=s3,k8s,kfp,postgres --build-arg TORCH_VERSION=
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG KUBETUNE_EXTRAS=all

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/kubetune

# torch first, from the chosen index, so the torch extra's "torch>=2.6" is already satisfied.
RUN if [ -n "${TORCH_VERSION}" ]; then \
      pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"; \
    fi

COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
# constraints.txt pins every dependency (`make constraints` regenerates it), so a rebuild
# gets the versions the tests ran with. Run as an unprivileged user: pods use a restricted
# securityContext.
RUN pip install --constraint constraints.txt ".[${KUBETUNE_EXTRAS}]" \
    && useradd --create-home --uid 10001 kubetune
USER 10001
WORKDIR /home/kubetune

ENTRYPOINT ["kubetune"]
CMD ["--help"]
