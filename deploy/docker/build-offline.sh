#!/usr/bin/env bash
# Build and smoke-test deploy/docker/Dockerfile with podman on a machine that reaches no image
# registry (the development and CI machines): a Debian base made locally with debootstrap stands in
# for python:3.11-slim, and pip uses this machine's package mirrors (mounted read-only into the build).
#   bash deploy/docker/build-offline.sh               build (or reuse), then the smoke runs below
#   bash deploy/docker/build-offline.sh --build-only  build (or reuse) only; prints `image: NAME INPUTS`
# The slow test llama_platform_tests/deploy/test_platform_image.py calls it with --build-only and
# runs the container itself. An image is reused only when its label org.llama-platform.build-inputs
# equals the hash of everything the build reads (Dockerfile, this script, the build context, the
# base image's id, the torch wheel); anything else rebuilds, with podman's layer cache (content-keyed).
# Measured on 2 shared cores (table in deploy/README.md): cold, from nothing, ~6.5 min (8m05s before the
# wheelhouse stage); code changed with the same pins, ~10 s; the same inputs, nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/llama-platform-image}
IMAGE=${IMAGE:-localhost/llama-platform:dev}
LABEL=org.llama-platform.build-inputs
mkdir -p "$WORK"
say() { echo "[$(date +%T)] $*" >&2; }

command -v podman >/dev/null && command -v debootstrap >/dev/null || {
  say "installing podman, debootstrap, runc (apt)"
  apt-get update -qq && apt-get install -y -qq podman debootstrap runc >/dev/null; }

# This machine's kernel mounts cgroups v1 ("hybrid" for crun): runc with cgroupfs works. Lower the
# default ulimits podman asks for (raising them is not permitted here).
cat > "$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"

# Base image: Debian bookworm (Python 3.11) from the Debian mirror, imported as a local image. Its
# tag carries the hash of its recipe, so a changed recipe makes a new base.
SUITE=bookworm MIRROR=http://deb.debian.org/debian
BASE_OPTS=(--variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates)
BASE=${BASE_IMAGE:-localhost/debian-python:$SUITE-$(echo "${BASE_OPTS[*]} $SUITE $MIRROR" | sha256sum | cut -c1-12)}
if ! podman image exists "$BASE"; then
  say "debootstrap $SUITE -> $BASE"
  rm -rf "$WORK/rootfs"
  debootstrap "${BASE_OPTS[@]}" "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"
  tar -C "$WORK/rootfs" -c . | podman import - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
fi

# torch: the local CPU wheel, through a one-package index (the Dockerfile's TORCH_INDEX_URL).
WHEEL=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl)
mkdir -p "$WORK/torch-index/simple/torch"
echo "<a href=\"file://$WHEEL\">$(basename "$WHEEL")</a>" > "$WORK/torch-index/simple/torch/index.html"

IGNORE=deploy/docker/Dockerfile.dockerignore
INPUTS=$({
  podman image inspect --format '{{.Id}}' "$BASE"
  basename "$WHEEL"
  find pyproject.toml README.md dagster.yaml workspace.yaml llama_platform notebooks \
    deploy/docker/Dockerfile "$IGNORE" deploy/docker/build-offline.sh \
    -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-64)

if [ "$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" = "$INPUTS" ]; then
  say "reusing $IMAGE: built from these inputs ($INPUTS)"
else
  # This machine's pip settings, mirrors and CA bundle (only the bundle file: the JRE's package writes
  # its keystore into /etc/ssl/certs/java during the build).
  mounts=()
  for path in /etc/xdg/pip /etc/pip.conf /root/.config/pip /opt/pypi /opt/pypi-more /opt/wheels /etc/ssl/certs/ca-certificates.crt; do
    [ -e "$path" ] && mounts+=(-v "$path:$path:ro")
  done
  say "building $IMAGE ($INPUTS)"
  # The index at a fixed path: the build arg is part of the layer cache key. --jobs 2: the runtime
  # stage's first layers (user, Java runtime from apt) build while the wheels stage downloads.
  podman build --jobs 2 --network host "${mounts[@]}" -v "$WORK/torch-index:/torch-index:ro" \
    --build-arg PYTHON_IMAGE="$BASE" \
    --build-arg TORCH_INDEX_URL="file:///torch-index/simple" \
    --ignorefile "$IGNORE" --label "$LABEL=$INPUTS" \
    -f deploy/docker/Dockerfile -t "$IMAGE" . >&2
  say "built $IMAGE"
fi
if [ "${1:-}" = --build-only ]; then
  echo "image: $IMAGE $INPUTS"
  exit 0
fi

# Run it the way the cluster does: non-root, read-only root, writable /tmp and $HOME only.
mkdir -p "$WORK/data" && chmod 777 "$WORK/data"
run() {
  podman run --rm --read-only --cap-drop ALL --security-opt no-new-privileges \
    --tmpfs /tmp --mount type=tmpfs,destination=/home/app,chown=true -v "$WORK/data:/data" "$IMAGE" "$@"
}
[ "$(run id -u)" = 10001 ]
run llama-platform --help | head -5

# The training entrypoint on a tiny config (synthetic issues, 10 steps, CPU).
PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} - "$WORK/data" <<'EOF'
import sys
from pathlib import Path
from llama_platform.training.config import TrainConfig
from llama_platform_tests.training.synthetic import write_synthetic_training_set
data = Path(sys.argv[1])
write_synthetic_training_set(data / "training_set.parquet", n=100)
TrainConfig(training_set_path="/data/training_set.parquet", output_dir="/data/out",
            mlflow_tracking_uri="sqlite:////data/mlflow.db", mlflow_experiment="image-test",
            registered_model_name="triage-image-test", run_name="image", max_steps=10, batch_size=8,
            seq_len=160, log_every=5, warmup_steps=2).save(data / "train_config.json")
EOF
chmod -R a+rwX "$WORK/data"
run python -m llama_platform.training.train --config /data/train_config.json
echo "ok: $IMAGE builds, runs as 10001 read-only, and trains"
