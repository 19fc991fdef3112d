"""The training pod and TrainJob as objects: fields, GPU limits, env, volumes, security, labels,
validated offline (kubernetes-validate --strict for core kinds, the Trainer SDK's models for the
TrainJob), and the pod exactly as dagster-k8s's PipesK8sClient would submit it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from dagster_k8s import PipesK8sClient
from dagster_k8s.pipes import build_pod_body
from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR
from kubeflow_trainer_api import models as kt
from kubernetes.client import ApiClient

from llama_platform.k8s import common
from llama_platform.k8s.training import (
    TRAIN_MODULE,
    TRAINER_CONTAINER,
    NodeShape,
    launcher_rbac_rules,
    pipes_pod_request,
    rank0_selector,
    train_job,
)
from llama_platform.resources.kubernetes import ATTEMPT_LABEL, KubernetesResource

K8S_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37 ships
RUN_ID = "6f1c2a8e-93b4-4c55-a0d2-7e1b9f4c3d21"
CONFIG_URI = "s3://platform/training/runs/6f1c2a8e/train_config.json"
IMAGE = "ghcr.io/llama-platform/trainer:0.1.0"
SHAPE = NodeShape(gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3", cpu="96", memory="1000Gi")
PIPES_ENV = {DAGSTER_PIPES_CONTEXT_ENV_VAR: "eJyrVkrLz1eyUlAqSc0rzi8tSk5VqgUAT4sHqw==",
             DAGSTER_PIPES_MESSAGES_ENV_VAR: "eJyrViooSixXslJQKkotLkktyi8tUaoFAE9RB1s="}


def strict_validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def submitted_pod(request: dict) -> dict:
    """The V1Pod PipesK8sClient.run would create from our arguments (its own build_pod_body)."""
    pod = build_pod_body(pod_name="dagster-6f1c2a8e-93b4-4c55-finetuned-checkpoint-0123456789",
                         image=None, command=None, env_vars=PIPES_ENV,
                         base_pod_meta=request["base_pod_meta"], base_pod_spec=request["base_pod_spec"])
    return {"apiVersion": "v1", "kind": "Pod", **ApiClient().sanitize_for_serialization(pod)}


@pytest.fixture(scope="module")
def request_() -> dict:
    return pipes_pod_request(run_id=RUN_ID, config_uri=CONFIG_URI, image=IMAGE, shape=SHAPE, active_deadline_s=7200)


@pytest.fixture(scope="module")
def pod(request_) -> dict:
    return submitted_pod(request_)


def test_pod_runs_the_one_entrypoint_on_gpus(request_, pod):
    assert request_["namespace"] == "training"
    [container] = pod["spec"]["containers"]
    assert container["name"] == TRAINER_CONTAINER and container["image"] == IMAGE
    assert container["command"] == ["python", "-m", TRAIN_MODULE, "--config", CONFIG_URI]
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "8" == resources["requests"]["nvidia.com/gpu"]
    assert resources["limits"] == resources["requests"] == {"cpu": "96", "memory": "1000Gi", "nvidia.com/gpu": "8"}
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 7200
    assert spec["serviceAccountName"] == "trainer" and spec["automountServiceAccountToken"] is False
    assert spec["terminationGracePeriodSeconds"] >= 60  # time to save a checkpoint on SIGTERM


def test_pod_credentials_come_from_the_secret_not_the_spec(pod):
    [container] = pod["spec"]["containers"]
    assert {"secretRef": {"name": common.S3_SECRET}} in container["envFrom"]
    assert {"configMapRef": {"name": common.CONFIG_MAP}} in container["envFrom"]
    names = {e["name"] for e in container["env"]}
    assert not names & set(common.S3_SECRET_KEYS)  # keys only through the Secret
    # Pipes' bootstrap vars were appended by dagster-k8s to our (first) container.
    assert {DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR, "HOME"} <= names
    assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(pod)


def test_pod_volumes_security_and_labels(pod):
    spec = pod["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/home/app": "home", "/dev/shm": "dshm"}
    assert set(mounts.values()) <= set(volumes)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == common.RUN_AS_USER
    sc = spec["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    labels = pod["metadata"]["labels"]
    # Ours win over dagster-k8s's defaults (it sets part-of: dagster).
    assert labels["app.kubernetes.io/part-of"] == "llama-platform"
    assert labels["app.kubernetes.io/component"] == "training"
    assert labels[common.DAGSTER_RUN_ID_LABEL] == RUN_ID


def test_submitted_pod_passes_kubernetes_validate_strict(pod):
    strict_validate(pod)
    # Also as the template of a batch Job (how a cluster admin might run the same pod by hand).
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train", "namespace": "training"},
           "spec": {"backoffLimit": 0, "template": {"metadata": pod["metadata"], "spec": pod["spec"]}}}
    strict_validate(job)


def test_kubernetes_validate_cli_on_the_rendered_manifests(tmp_path, pod, job):
    """The same check a person or CI runs on files: the pod, and the TrainJob (a CRD kind, which
    the tool can only warn about: its schema is checked by the SDK model tests below)."""
    manifest = tmp_path / "training.yaml"
    manifest.write_text(yaml.safe_dump_all([pod, job], sort_keys=False))
    cli = Path(sys.executable).parent / "kubernetes-validate"
    done = subprocess.run([str(cli), "--strict", "-k", K8S_VERSION, str(manifest)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed for resource pod/" in done.stdout  # the pod was actually validated
    assert "Couldn't find schema for kind TrainJob" in done.stdout


def test_strict_validation_would_catch_a_wrong_field(pod):
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["envFromSecret"] = common.S3_SECRET
    with pytest.raises(kubernetes_validate.ValidationError):
        strict_validate(broken)
    broken = copy.deepcopy(pod)
    broken["spec"]["activeDeadlineSeconds"] = "2h"
    with pytest.raises(kubernetes_validate.ValidationError):
        strict_validate(broken)


def test_cpu_only_shape_has_no_gpu_placement():
    request = pipes_pod_request(run_id=RUN_ID, config_uri=CONFIG_URI, image=IMAGE, shape=NodeShape(gpus=0), active_deadline_s=60)
    spec = request["base_pod_spec"]
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in spec and "tolerations" not in spec
    strict_validate(submitted_pod(request))


# --- TrainJob ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def job() -> dict:
    return train_job(name="train-6f1c2a8e-a1b2c3", run_id=RUN_ID, config_uri=CONFIG_URI, image=IMAGE, shape=SHAPE,
                     num_nodes=4, active_deadline_s=86400, extra_env=PIPES_ENV).to_dict()


def _node_patch(job: dict) -> dict:
    [patch] = job["spec"]["runtimePatches"]
    [node] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    return node["template"]["spec"]["template"]


def test_train_job_shape(job):
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["metadata"]["namespace"] == "training"
    assert job["metadata"]["labels"][common.DAGSTER_RUN_ID_LABEL] == RUN_ID
    spec = job["spec"]
    assert spec["runtimeRef"] == {"name": "torch-distributed", "kind": "ClusterTrainingRuntime", "apiGroup": "trainer.kubeflow.org"}
    assert spec["activeDeadlineSeconds"] == 86400
    trainer = spec["trainer"]
    assert trainer["image"] == IMAGE and trainer["numNodes"] == 4 and trainer["numProcPerNode"] == 8
    assert trainer["command"] == ["torchrun", "--module", TRAIN_MODULE, "--config", CONFIG_URI]
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"


def test_train_job_env_references_the_secret_and_carries_pipes(job):
    env = {e["name"]: e for e in job["spec"]["trainer"]["env"]}
    for key in common.S3_SECRET_KEYS:
        assert env[key] == {"name": key, "valueFrom": {"secretKeyRef": {"name": common.S3_SECRET, "key": key}}}
    assert env["AWS_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"] == {"name": common.CONFIG_MAP, "key": "AWS_ENDPOINT_URL"}
    assert env["AWS_REGION"]["valueFrom"]["configMapKeyRef"]["optional"] is True
    assert env[DAGSTER_PIPES_CONTEXT_ENV_VAR]["value"] == PIPES_ENV[DAGSTER_PIPES_CONTEXT_ENV_VAR]
    assert all("value" not in env[k] for k in common.S3_SECRET_KEYS)


def test_train_job_pods_are_placed_and_restricted_through_runtime_patches(job):
    template = _node_patch(job)
    assert template["metadata"]["labels"][common.DAGSTER_RUN_ID_LABEL] == RUN_ID
    spec = template["spec"]
    assert spec["serviceAccountName"] == "trainer"
    assert spec["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["securityContext"]["runAsNonRoot"] is True
    [container] = spec["containers"]
    assert container["name"] == "node"  # the torch-distributed runtime's trainer container
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/home/app", "/dev/shm"}


def test_train_job_round_trips_through_the_sdk_model(job):
    # Unknown fields would be dropped by the model, wrong types refused: equality proves neither.
    assert kt.TrainerV1alpha1TrainJob.from_dict(job).to_dict() == job
    with pytest.raises(ValueError):
        kt.TrainerV1alpha1TrainJob.from_dict({**job, "spec": {**job["spec"], "trainer": {**job["spec"]["trainer"], "numNodes": "four"}}})
    drifted = copy.deepcopy(job)
    drifted["spec"]["podTemplateOverrides"] = [{"targetJobs": [{"name": "node"}]}]  # the pre-2.2 field
    assert kt.TrainerV1alpha1TrainJob.from_dict(drifted).to_dict() != drifted


def test_train_job_pod_pieces_pass_kubernetes_validate_strict(job):
    """The patch's pod spec plus the trainer's container fields, assembled as the Pod the runtime
    will run: the core types inside the CRD are checked by the Kubernetes schemas too."""
    template = _node_patch(job)
    trainer = job["spec"]["trainer"]
    [patch_container] = template["spec"]["containers"]
    container = {**patch_container, "image": trainer["image"], "command": trainer["command"],
                 "env": trainer["env"], "resources": trainer["resourcesPerNode"]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "node-0", **template["metadata"]},
           "spec": {**template["spec"], "containers": [container], "restartPolicy": "Never"}}
    strict_validate(pod)


def test_rank0_selector_names_node_zero():
    assert rank0_selector("train-x") == (
        "jobset.sigs.k8s.io/jobset-name=train-x,jobset.sigs.k8s.io/replicatedjob-name=node,"
        "batch.kubernetes.io/job-completion-index=0")


def test_train_job_needs_a_node():
    with pytest.raises(ValueError, match="num_nodes"):
        train_job(name="t", run_id=RUN_ID, config_uri=CONFIG_URI, image=IMAGE, shape=SHAPE, num_nodes=0, active_deadline_s=1)


# --- the resource's view --------------------------------------------------------------------

def test_resource_builds_the_client_and_the_request():
    k8s = KubernetesResource(gpus_per_node=2, gpu_product="NVIDIA-H200", trainer_image="registry.local/trainer:1")
    client = k8s.pipes_client()
    assert isinstance(client, PipesK8sClient) and client.load_incluster_config is True
    request = k8s.pod_request(RUN_ID, CONFIG_URI, attempt="0a1b2c3d")
    assert request["base_pod_meta"]["labels"][ATTEMPT_LABEL] == "0a1b2c3d"
    pod = submitted_pod(request)
    assert pod["spec"]["containers"][0]["image"] == "registry.local/trainer:1"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    strict_validate(pod)
    outside = KubernetesResource(kubeconfig_file="/tmp/kubeconfig").pipes_client()
    assert outside.load_incluster_config is False and outside.kubeconfig_file == "/tmp/kubeconfig"


def test_launcher_role_is_a_valid_role_for_the_calls_it_makes():
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "training-launcher", "namespace": "training"},
            "rules": [ApiClient().sanitize_for_serialization(r) for r in launcher_rbac_rules()]}
    strict_validate(role)
    granted = {(g, res, verb) for r in role["rules"] for g in r["apiGroups"] for res in r["resources"] for verb in r["verbs"]}
    # PipesK8sClient: create/read/delete the pod and follow its log; TrainJob path: create/read/delete.
    for needed in [("", "pods", "create"), ("", "pods", "get"), ("", "pods", "delete"), ("", "pods/log", "get"),
                   ("trainer.kubeflow.org", "trainjobs", "create"), ("trainer.kubeflow.org", "trainjobs", "get"),
                   ("trainer.kubeflow.org", "trainjobs", "delete"), ("", "pods", "list")]:
        assert needed in granted
