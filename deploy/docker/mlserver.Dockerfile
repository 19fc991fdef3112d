# The MLServer image: what Seldon Core 2's `Server` llama-platform-mlserver runs (deploy/k8s/base/serving/
# seldon-server.yaml; the image name is llama_platform/k8s/serving.py MLSERVER_IMAGE). MLServer 1.7.1
# with the triage runtime (llama_platform/serving/mlserver_runtime.py), started behind the endpoint's
# keys and limits (llama_platform/serving/mlserver_app.py). Build from the repo root:
#   docker build -f deploy/docker/mlserver.Dockerfile -t ghcr.io/llama-platform/mlserver-triage:0.1.0 .
# Its own image, not the platform image's venv: MLServer 1.7 needs fastapi<0.116 (starlette<0.47),
# KServe 0.21 starlette>=1.3.1. Pinned: the base by version (its @sha256 digest at release), torch to
# the 2.13.0 CPU wheel, everything else by mlserver-constraints.txt, the lock of the tested
# .venv-mlserver (`make mlserver-constraints`). GPU nodes would take a CUDA base and torch from PyPI.
ARG PYTHON_IMAGE=docker.io/library/python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
# The CPU wheel index of PyTorch; a mirror that carries torch 2.13.0+cpu works the same.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# checkov:skip=CKV_DOCKER_7: FROM takes the ARG PYTHON_IMAGE, which is pinned to a version (and a digest at release)
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/llama-platform
COPY deploy/docker/mlserver-constraints.txt ./constraints.txt
# torch first: the lock pins torch==2.13.0+cpu, a version only the CPU index has, so the CUDA build is
# never pulled, while its dependencies come from PyPI at the lock's versions (the CPU index alone
# lacks some). Then MLServer and what the runtime imports (model: transformers, peft, tokenizers,
# safetensors; registry: the MLflow client; s3:// artifacts: boto3), every one at the lock's version.
RUN pip install --extra-index-url "$TORCH_INDEX_URL" -c constraints.txt torch==2.13.0
RUN pip install -c constraints.txt \
      mlserver==1.7.1 \
      transformers==5.24.0 \
      peft==0.21.2 \
      tokenizers==0.23.3 \
      safetensors==0.8.0 \
      mlflow-skinny==3.17.2 \
      boto3==1.44.8
# The platform package without its orchestration dependencies (Dagster, Feast, KServe stay in the
# platform image); the import proves the runtime's and the launcher's dependencies are all here.
COPY pyproject.toml README.md ./
COPY llama_platform ./llama_platform
RUN pip install --no-deps . \
 && python -c "import llama_platform.serving.mlserver_runtime, llama_platform.serving.mlserver_app, llama_platform.training.inference"

FROM ${PYTHON_IMAGE} AS runtime
# checkov:skip=CKV_DOCKER_2: health is checked by the Server's probes (Seldon's ServerConfig: /v2/health/live and /ready); the kubelet ignores HEALTHCHECK
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid 10001 --home-dir /home/app --create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# MLSERVER_PARALLEL_WORKERS=0: the runtime's custom handlers take the HTTP request, which cannot be
# sent to a worker process; the shared micro-batcher does the batching in-process instead.
# MLSERVER_MODELS_DIR is where Seldon's agent puts the models (its ServerConfig sets the same).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/app \
    HF_HOME=/home/app/.cache/huggingface \
    GIT_PYTHON_REFRESH=quiet \
    MLSERVER_PARALLEL_WORKERS=0 \
    MLSERVER_MODELS_DIR=/mnt/agent/models
WORKDIR /home/app
# Non-root, the uid every manifest runs as (llama_platform/k8s/common.py RUN_AS_USER). The root
# filesystem is mounted read-only in the cluster: /tmp and /home/app are emptyDirs there, and
# nothing here writes elsewhere (no parallel workers, so no metrics dir).
USER 10001:10001
EXPOSE 9000 9500
ENTRYPOINT ["python", "-m", "llama_platform.serving.mlserver_app"]
# The Server's podSpec passes its own args (limits, then `start $(MLSERVER_MODELS_DIR)`).
CMD ["start", "/mnt/agent/models"]
