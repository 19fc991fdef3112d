"""The platform image (deploy/docker/Dockerfile), built for real with podman from a locally made
Debian base (deploy/docker/build-offline.sh: no image registry is reachable here), then run the way
the cluster runs it: uid 10001, read-only root filesystem, no capabilities, no privilege
escalation, writable /tmp and $HOME only, and no network.

The build is reused only when the image's label carries the hash of every build input (the script
computes it); a build failure fails the test, never skips it (a skip would hide a broken
Dockerfile). Cold, from nothing, the build takes ~6 min on 2 shared cores (deploy/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from llama_platform.k8s import common
from llama_platform.training.config import TrainConfig
from llama_platform_tests.deploy.manifests import REPO
from llama_platform_tests.training.synthetic import write_synthetic_training_set

SCRIPT = REPO / "deploy" / "docker" / "build-offline.sh"
IMAGE = "localhost/llama-platform:test"
LABEL = "org.llama-platform.build-inputs"

# The build (cold) runs in the first test's setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


@dataclass
class Image:
    name: str
    inputs: str
    env: dict

    def podman(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=self.env)

    def run(self, *cmd: str, data: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        """As a restricted pod: common.py's uid, read-only root, emptyDirs on /tmp and $HOME."""
        args = ["run", "--rm", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--network", "none", "--tmpfs", "/tmp", "--mount", "type=tmpfs,destination=/home/app,chown=true"]
        if data:
            args += ["-v", f"{data}:/data"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        return self.podman(*args, self.name, *cmd)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Image:
    work = tmp_path_factory.mktemp("image")
    env = {**os.environ, "WORK": str(work), "IMAGE": IMAGE}
    built = subprocess.run(["bash", str(SCRIPT), "--build-only"], capture_output=True, text=True, timeout=2300,
                           cwd=REPO, env=env)
    if built.returncode != 0:
        pytest.fail(f"the platform image did not build (exit {built.returncode}):\n{built.stderr[-6000:]}")
    _, name, inputs = next(line for line in built.stdout.splitlines() if line.startswith("image: ")).split()
    # podman run needs the script's containers.conf (runc, cgroupfs, lower ulimits).
    return Image(name, inputs, {**env, "CONTAINERS_CONF": str(work / "containers.conf")})


def test_image_carries_its_inputs_and_runs_restricted(image):
    [info] = json.loads(image.podman("image", "inspect", image.name).stdout)
    assert info["Config"]["Labels"][LABEL] == image.inputs and len(image.inputs) == 64
    assert info["Config"]["User"] == f"{common.RUN_AS_USER}:{common.RUN_AS_GROUP}"
    ids = image.run("sh", "-c", "id -u && id -g")
    assert ids.returncode == 0, ids.stderr
    assert ids.stdout.split() == [str(common.RUN_AS_USER), str(common.RUN_AS_GROUP)]
    # The root filesystem is read-only, and no capability is left (CapEff all zero).
    wrote = image.run("touch", "/opt/llama-platform/x")
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr
    status = image.run("cat", "/proc/self/status").stdout
    assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status


def test_cli_and_the_k8s_code_location_load_in_the_image(image):
    cli = image.run("llama-platform", "--help")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("usage: llama-platform") and "models" in cli.stdout
    # The image's default command serves llama_platform.definitions; in the k8s profile it loads
    # with dagster-k8s's executor (the k8s extra is installed, the step executor resolves).
    validated = image.run("dagster", "definitions", "validate", "-m", "llama_platform.definitions",
                          env={"LLAMA_PLATFORM_PROFILE": "k8s", "DAGSTER_HOME": "/tmp"})
    assert validated.returncode == 0, validated.stdout[-2000:] + validated.stderr[-3000:]
    assert "Validation successful" in validated.stdout + validated.stderr


def test_training_entrypoint_trains_and_registers_in_the_image(image, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_synthetic_training_set(data / "training_set.parquet", n=100)
    TrainConfig(training_set_path="/data/training_set.parquet", output_dir="/data/out",
                mlflow_tracking_uri="sqlite:////data/mlflow.db", mlflow_experiment="image-test",
                registered_model_name="triage-image-test", run_name="image", max_steps=10, batch_size=8,
                seq_len=160, log_every=5, warmup_steps=2).save(data / "train_config.json")
    for path in [data, *data.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)  # written here as root, read and written by uid 10001
    trained = image.run("python", "-m", "llama_platform.training.train", "--config", "/data/train_config.json",
                        data=data)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    result = json.loads((data / "out" / "result.json").read_text())
    assert result["device"] == "cpu" and result["model_version"] == 1
    adapter = data / "out" / "model" / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").stat().st_size > 0
    # The MLflow run and the registered version are in the store the container wrote.
    client = MlflowClient(tracking_uri=f"sqlite:///{data / 'mlflow.db'}", registry_uri=f"sqlite:///{data / 'mlflow.db'}")
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and "val_loss" in run.data.metrics
    version = client.get_model_version("triage-image-test", "1")
    assert version.run_id == result["mlflow_run_id"]


def test_h2o_baseline_jvm_starts_in_the_image(image):
    """The baseline step (evaluation/baseline.py) starts a private H2O JVM: the image has Java."""
    started = image.run("python", "-c", "import h2o\n"
                        "from llama_platform.evaluation.baseline import h2o_cluster\n"
                        "with h2o_cluster(nthreads=1, max_mem_size='512M'):\n"
                        "    print('h2o', h2o.cluster().version, h2o.cluster().cloud_healthy)\n")
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]
    assert "h2o 3.46.0.12 True" in started.stdout
