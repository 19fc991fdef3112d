#!/usr/bin/env bash
# Build and smoke-test deploy/docker/Dockerfile with podman on a machine that reaches no image
# registry (the development machines): a Debian base made locally with debootstrap stands in for
# python:3.11-slim, and pip uses this machine's package mirrors (mounted read-only into the build).
# Not part of `make test` (a full build takes ~15 min on 2 cores); run it by hand:
#   bash deploy/docker/build-offline.sh
# It ends with the image running as uid 10001 on a read-only root filesystem, with no capabilities:
# `llama-platform --help`, and the training entrypoint on a tiny config.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/llama-platform-image}
IMAGE=${IMAGE:-localhost/llama-platform:dev}
mkdir -p "$WORK"

command -v podman >/dev/null && command -v debootstrap >/dev/null || {
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

# Base image: Debian bookworm (Python 3.11) from the Debian mirror, imported as a local image.
if ! podman image exists localhost/debian-python:bookworm; then
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    bookworm "$WORK/rootfs" http://deb.debian.org/debian
  tar -C "$WORK/rootfs" -c . | podman import - localhost/debian-python:bookworm
fi

# torch: the local CPU wheel, through a one-package index (the Dockerfile's TORCH_INDEX_URL).
WHEEL=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl)
mkdir -p "$WORK/torch-index/simple/torch"
echo "<a href=\"file://$WHEEL\">$(basename "$WHEEL")</a>" > "$WORK/torch-index/simple/torch/index.html"

mounts=()
for path in /etc/xdg/pip /etc/pip.conf /root/.config/pip /opt/pypi /opt/pypi-more /opt/wheels /etc/ssl/certs; do
  [ -e "$path" ] && mounts+=(-v "$path:$path:ro")
done
podman build --network host "${mounts[@]}" -v "$WORK/torch-index:$WORK/torch-index:ro" \
  --build-arg PYTHON_IMAGE=localhost/debian-python:bookworm \
  --build-arg TORCH_INDEX_URL="file://$WORK/torch-index/simple" \
  -f deploy/docker/Dockerfile -t "$IMAGE" .

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
