"""The Kubernetes Jobs Dagster itself builds from our Helm values and executor config.

dagster-k8s's own `construct_dagster_k8s_job` makes the run Job (K8sRunLauncher, from the Helm
chart's runLauncher values) and the step Jobs (k8s_job_executor, from deploy/helm/k8s-job-executor.yaml),
so the tests check the very objects a cluster would receive, without a cluster.
"""

from __future__ import annotations

import yaml
from dagster._config import validate_config
from dagster._core.system_config.objects import ResolvedRunConfig
from dagster_k8s import k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job
from kubernetes.client import ApiClient

from llama_platform.definitions import build_definitions
from llama_platform.k8s import common
from llama_platform.settings import load_settings
from llama_platform_tests.deploy.manifests import HELM, helm_values

EXECUTOR_CONFIG = HELM / "k8s-job-executor.yaml"


def _job_config(values: dict) -> DagsterK8sJobConfig:
    """What the chart's K8sRunLauncher passes on: DAGSTER_HOME, the instance ConfigMap
    (`<release>-instance`) and the Postgres password Secret."""
    return DagsterK8sJobConfig(
        job_image=common.DEFAULT_IMAGES["platform"],
        dagster_home=values["global"]["dagsterHome"],
        instance_config_map="dagster-instance",
        postgres_password_secret=values["global"]["postgresqlSecretName"],
    )


def executor_config() -> dict:
    """The executor config after Dagster's own validation (defaults filled in); raises if invalid."""
    result = validate_config(k8s_job_executor.config_schema.config_type, yaml.safe_load(EXECUTOR_CONFIG.read_text()))
    if not result.success:
        raise ValueError([e.message for e in result.errors])
    return result.value


def _resolved(job, run_config: dict) -> dict:
    return ResolvedRunConfig.build(job, run_config).execution.execution_engine_config


def profile_executor_configs(job_name: str = "train_and_deploy_job", **env: str) -> tuple[dict, dict]:
    """(the executor config a job of the k8s profile's Definitions runs with, the config the same
    job would run with under the plain k8s_job_executor given deploy/helm/k8s-job-executor.yaml as
    run config): both resolved by Dagster as at launch (mapping applied, defaults filled in)."""
    defs = build_definitions(load_settings({"LLAMA_PLATFORM_PROFILE": "k8s", **env}))
    job = defs.resolve_job_def(job_name)
    from_file = _resolved(job.with_executor_def(k8s_job_executor),
                          {"execution": {"config": yaml.safe_load(EXECUTOR_CONFIG.read_text())}})
    return _resolved(job, {}), from_file


def step_job(values: dict | None = None, exc: dict | None = None) -> dict:
    """The step Job k8s_job_executor builds from `exc` (default: deploy/helm/k8s-job-executor.yaml)."""
    values = values or helm_values()
    exc = exc or executor_config()
    # The same mapping k8s_job_executor does from its config to a container context.
    context = K8sContainerContext(
        service_account_name=exc.get("service_account_name"),
        env_config_maps=exc.get("env_config_maps"),
        env_secrets=exc.get("env_secrets"),
        labels=exc.get("labels"),
        namespace=exc.get("job_namespace"),
        resources=exc.get("resources"),
        security_context=exc.get("security_context"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(exc.get("step_k8s_config", {})),
    )
    job = construct_dagster_k8s_job(
        job_config=_job_config(values), args=["dagster", "api", "execute_step"], job_name="dagster-step-example",
        pod_name="dagster-step-example", component="step_worker",
        user_defined_k8s_config=context.run_k8s_config, labels={"dagster/op": "example"}, env_vars=[],
    )
    out = ApiClient().sanitize_for_serialization(job)
    out["metadata"]["namespace"] = context.namespace
    return out


def run_job(values: dict | None = None) -> dict:
    values = values or helm_values()
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_cfg = launcher["runK8sConfig"]
    context = K8sContainerContext(
        service_account_name=values["serviceAccount"]["name"],  # the chart's default, overridden below
        env_config_maps=[c["name"] for c in launcher["envConfigMaps"]],
        env_secrets=[s["name"] for s in launcher["envSecrets"]],
        volume_mounts=launcher["volumeMounts"],
        volumes=launcher["volumes"],
        labels=launcher["labels"],
        namespace=launcher["jobNamespace"],
        resources=launcher["resources"],
        security_context=launcher["securityContext"],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict({
            "pod_spec_config": run_cfg.get("podSpecConfig", {}),
            "job_spec_config": run_cfg.get("jobSpecConfig", {}),
        }),
    )
    job = construct_dagster_k8s_job(
        job_config=_job_config(values), args=["dagster", "api", "execute_run"], job_name="dagster-run-example",
        pod_name="dagster-run-example", component="run_worker",
        user_defined_k8s_config=context.run_k8s_config, labels={}, env_vars=[],
    )
    out = ApiClient().sanitize_for_serialization(job)
    out["metadata"]["namespace"] = context.namespace
    return out
