# The trainer image: the one training entrypoint on CUDA, for GPU pods (PipesK8sClient's pod, or the
# nodes of a Kubeflow TrainJob, which run it under torchrun). Build from the repo root:
#   docker build -f deploy/docker/trainer.Dockerfile -t ghcr.io/llama-platform/trainer:0.1.0 .
#
# torch 2.13.0 on PyPI is the CUDA 13.0 build (it depends on the cuda-toolkit 13.0.3 and cuDNN 9.20
# wheels), so both stages use CUDA 13.0 images: DeepSpeed's ops must be compiled with the same CUDA
# major version as torch. GPU nodes need an NVIDIA driver that supports CUDA 13 (>= 580).
# Kept consistent with deploy/docker/Dockerfile (the platform image): Python 3.11, uid 10001.

ARG CUDA_VERSION=13.0.1
ARG PYTHON_VERSION=3.11.14
ARG UV_VERSION=0.13.8

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- builder: a self-contained Python and a venv with the pinned training stack -------------------
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-devel-ubuntu22.04 AS builder
ARG PYTHON_VERSION
# Ubuntu 22.04 has no Python 3.11 release package: uv installs a standalone CPython into /opt/python.
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install ${PYTHON_VERSION} && uv venv --python ${PYTHON_VERSION} /opt/venv

# The same pins as pyproject.toml and the tested environment (torch from PyPI = CUDA 13.0 build).
RUN uv pip install \
      torch==2.13.0 \
      transformers==5.24.0 \
      peft==0.21.2 \
      accelerate==1.15.0 \
      bitsandbytes==0.50.2 \
      tokenizers==0.23.3 \
      safetensors==0.8.0 \
      mlflow==3.17.2 \
      dagster-pipes==1.13.27 \
      pandas==2.3.3 \
      pyarrow==25.0.1 \
      boto3==1.44.8 \
      matplotlib==3.11.2 \
      tqdm==4.70.1 \
      ninja==1.13.2 \
      py-cpuinfo==9.0.0

# DeepSpeed's fused Adam (GPU) and CPU Adam (ZeRO offload) compiled here for A100 (8.0) and
# H100/H200 (9.0), so pods need no compiler and pay no JIT build at start.
RUN DS_BUILD_FUSED_ADAM=1 DS_BUILD_CPU_ADAM=1 TORCH_CUDA_ARCH_LIST="8.0;9.0" \
    uv pip install --no-build-isolation deepspeed==0.19.8

# The platform package without its orchestration dependencies (Dagster, Feast, KServe stay in the
# platform image); the import proves the entrypoint's dependencies are all here.
COPY pyproject.toml README.md /src/
COPY llama_platform /src/llama_platform
RUN uv pip install --no-deps /src && python -c "import llama_platform.training.train"

# --- runtime: CUDA runtime libraries, the venv, a non-root user ------------------------------------
# Not the -cudnn- variant: torch brings its own cuDNN as a wheel.
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu22.04 AS runtime
# checkov:skip=CKV_DOCKER_2: training pods are batch runs watched by Dagster Pipes and the pod status; the kubelet ignores HEALTHCHECK
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    HOME=/home/app HF_HOME=/home/app/.cache/huggingface
# uid/gid 10001 = llama_platform/k8s/common.py RUN_AS_USER/RUN_AS_GROUP; the pods mount an emptyDir
# on $HOME (the root filesystem is read-only there).
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --home-dir /home/app --create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/python /opt/python
COPY --from=builder /opt/venv /opt/venv
WORKDIR /home/app
USER 10001:10001

# Pods pass `--config s3://...` (a TrainJob runs the same module under torchrun).
ENTRYPOINT ["python", "-m", "llama_platform.training.train"]
