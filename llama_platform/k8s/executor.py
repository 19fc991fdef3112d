"""The k8s profile's executor: dagster-k8s's `k8s_job_executor`, one Kubernetes Job per step.

Step Jobs run beside their run (namespace dagster, account dagster-run: the Role
`dagster-step-launcher` in deploy/k8s lets the run pod create them there and nowhere else), with
common.py's security contexts, scratch volumes, Secrets and labels, and requests/limits on the
container. Training and serving steps then start their GPU pod / TrainJob in `training` and their
InferenceService in `serving` (k8s/training.py, k8s/serving.py). deploy/helm/k8s-job-executor.yaml
is the same mapping for readers of deploy/; a test checks they are equal.

The image is not set: dagster-k8s runs each step in its run's image (the user code deployment's).
Concurrency of the training and forge steps is Dagster's pools (assets/training.py, assets/raw.py),
which hold for step Jobs too.
"""

from __future__ import annotations

from dagster import ExecutorDefinition
from dagster_k8s import k8s_job_executor

from llama_platform.k8s import common

# Steps of one run at once (each is a pod with the limits below).
MAX_CONCURRENT_STEPS = 4
STEP_RESOURCES = {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
STEP_JOB_TTL_S = 86400  # finished step Jobs (and their logs) stay a day


def _snake(model) -> dict:
    """A kubernetes client model as the snake_case dict dagster-k8s's config takes, without unset fields."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(model.to_dict())


def step_executor_config(kubeconfig_file: str | None = None) -> dict:
    """k8s_job_executor's config; `kubeconfig_file` None means in-cluster (the run pod's account)."""
    namespace, account = common.SERVICE_ACCOUNTS["dagster_run"]
    volumes, mounts = common.scratch_volumes()
    config = {
        "max_concurrent": MAX_CONCURRENT_STEPS,
        "service_account_name": account,
        "job_namespace": namespace,
        "env_config_maps": [common.CONFIG_MAP],
        # The same Secrets as the run pods (Helm values): steps run the same asset code.
        "env_secrets": [common.S3_SECRET, common.FORGE_SECRET, common.SERVING_CLIENT_SECRET],
        "labels": common.labels("dagster-step"),
        "step_k8s_config": {
            "container_config": {
                "resources": STEP_RESOURCES,
                "security_context": _snake(common.container_security_context()),
                "volume_mounts": [_snake(m) for m in mounts],
            },
            "pod_spec_config": {
                "security_context": _snake(common.pod_security_context()),
                "volumes": [_snake(v) for v in volumes],
            },
            "job_spec_config": {"ttl_seconds_after_finished": STEP_JOB_TTL_S, "backoff_limit": 0},
        },
    }
    if kubeconfig_file:
        config |= {"load_incluster_config": False, "kubeconfig_file": kubeconfig_file}
    return config


def step_executor(kubeconfig_file: str | None = None) -> ExecutorDefinition:
    return k8s_job_executor.configured(step_executor_config(kubeconfig_file), name="k8s_job_executor")
