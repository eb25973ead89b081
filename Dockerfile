# kubetune runtime image: the same `kubetune` command runs the controller and each trial pod.
# Build the CPU image by default; pass --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
# (or another CUDA wheel index) for GPU trial pods.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/kubetune

# torch first, from the chosen index, so the project's "torch>=2.6" is already satisfied.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

COPY pyproject.toml README.md ./
COPY src ./src
# Run as an unprivileged user: pods use a restricted securityContext.
RUN pip install . \
    && useradd --create-home --uid 10001 kubetune
USER 10001
WORKDIR /home/kubetune

ENTRYPOINT ["kubetune"]
CMD ["--help"]
