"""The Dagster Helm values and the k8s_job_executor config: valid for Dagster, and the run and step
Jobs that dagster-k8s builds from them are restricted, limited and run as dagster-run."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from dagster._config import validate_config
from dagster_k8s import k8s_job_executor

from llama_platform.definitions import build_definitions
from llama_platform.k8s import common
from llama_platform.settings import load_settings
from llama_platform_tests.deploy import dagster_jobs, policy
from llama_platform_tests.deploy.manifests import HELM_VALUES, OVERLAYS, REPO, helm_pod_specs, helm_values, objects

DAGSTER_NS, DAGSTER_RUN = common.SERVICE_ACCOUNTS["dagster_run"]


def test_executor_config_passes_dagsters_own_schema():
    config = dagster_jobs.executor_config()
    assert config["max_concurrent"] == 4 and config["service_account_name"] == DAGSTER_RUN
    bad = yaml.safe_load(dagster_jobs.EXECUTOR_CONFIG.read_text())
    bad["max_concurent"] = bad.pop("max_concurrent")
    assert not validate_config(k8s_job_executor.config_schema.config_type, bad).success


@pytest.mark.parametrize("build", [dagster_jobs.run_job, dagster_jobs.step_job], ids=["run", "step"])
def test_jobs_built_by_dagster_k8s_are_valid_restricted_and_scoped(build):
    job = build()
    kubernetes_validate.validate(job, "1.37.0", strict=True)
    pod = job["spec"]["template"]["spec"]
    assert policy.pod_violations(job["metadata"]["name"], pod) == []
    assert job["metadata"]["namespace"] == DAGSTER_NS
    assert pod["serviceAccountName"] == DAGSTER_RUN
    # The Secrets and ConfigMaps it reads exist in that namespace (External Secrets / kustomize).
    objs = objects("dev")
    made = {o["spec"]["target"]["name"] for o in objs
            if o["kind"] == "ExternalSecret" and o["metadata"]["namespace"] == DAGSTER_NS}
    maps = {o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["namespace"] == DAGSTER_NS}
    container = pod["containers"][0]
    assert {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e} <= made
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e} <= made
    assert {e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e} <= maps


def test_helm_values_wire_the_chart_to_the_platform():
    values = helm_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    # External Postgres, password only by Secret reference.
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlHost"] == "postgres.data.svc.cluster.local"
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] == common.DAGSTER_DB_SECRET
    # Our accounts and Roles, not the chart's.
    assert values["rbacEnabled"] is False and values["serviceAccount"]["create"] is False
    assert values["serviceAccount"]["name"] == common.SERVICE_ACCOUNTS["dagster"][1]
    user = values["dagster-user-deployments"]
    assert user["serviceAccount"]["name"] == DAGSTER_RUN
    [deployment] = user["deployments"]
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert image == common.DEFAULT_IMAGES["platform"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "llama_platform.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["telemetry"]["enabled"] is False
    # The Ingress and the network policy point at the port the webserver listens on.
    port = values["dagsterWebserver"]["service"]["port"]
    for overlay in OVERLAYS:
        ingress = next(o for o in objects(overlay) if o["kind"] == "Ingress" and o["metadata"]["name"] == "dagster-webserver")
        assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"] == port


def test_prod_values_scale_the_stateless_parts_only():
    base, prod = helm_values(), helm_values("dagster-values-prod.yaml")
    assert prod["dagsterWebserver"]["replicaCount"] == 2
    assert "replicaCount" not in prod.get("dagsterDaemon", {})  # exactly one daemon per instance
    assert prod["dagster-user-deployments"]["deployments"][0]["replicaCount"] == 2
    limit = prod["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["maxConcurrentRuns"]
    assert limit > base["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["maxConcurrentRuns"]
    # The prod user deployment keeps the restricted contexts (lists are replaced, not merged, by Helm).
    merged = {**base, "dagster-user-deployments": prod["dagster-user-deployments"]}
    for where, pod in helm_pod_specs(merged):
        assert policy.pod_violations(where, pod) == []


# The keys the official chart's values.schema.json allows (its models forbid extra keys, so a
# misspelt key fails `helm install`). helm is not installable here, so they are transcribed from
# the chart's schema models at 1.13.x (helm/dagster/schema/schema/charts/dagster/subschema/
# webserver.py, daemon.py, run_launcher.py, compute_log_manager.py and
# dagster_user_deployments/subschema/user_deployments.py in dagster-io/dagster).
_IMAGE_PROBES_PODS = {"image", "env", "envConfigMaps", "envSecrets", "labels", "nodeSelector", "affinity",
                      "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe",
                      "readinessProbe", "startupProbe", "annotations", "volumeMounts", "volumes", "schedulerName"}
CHART_KEYS = {
    "dagsterWebserver": _IMAGE_PROBES_PODS | {
        "dbStatementTimeout", "dbPoolRecycle", "logLevel", "pathPrefix", "replicaCount", "nameOverride", "service",
        "workspace", "deploymentLabels", "enableReadOnly", "initContainerResources"},
    "dagsterDaemon": _IMAGE_PROBES_PODS | {
        "enabled", "runCoordinator", "heartbeatTolerance", "deploymentLabels", "runMonitoring", "runRetries",
        "sensors", "schedules", "initContainerResources"},
    "deployment": _IMAGE_PROBES_PODS | {
        "name", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "deploymentNamespace", "port",
        "replicaCount", "initContainers", "sidecarContainers", "deploymentStrategy"},
    "k8sRunLauncher": {
        "envConfigMaps", "envSecrets", "envVars", "failPodOnRunFailure", "image", "imagePullPolicy", "jobNamespace",
        "kubeconfigFile", "labels", "loadInclusterConfig", "resources", "runK8sConfig", "schedulerName",
        "securityContext", "volumeMounts", "volumes"},
    "runK8sConfig": {"containerConfig", "jobMetadata", "jobSpecConfig", "podSpecConfig", "podTemplateSpecMetadata"},
    "s3ComputeLogManager": {
        "localDir", "prefix", "useSsl", "verify", "verifyCertPath", "endpointUrl", "skipEmptyFiles", "uploadInterval",
        "uploadExtraArgs", "showUrlOnly", "region", "bucket"},
    "queuedRunCoordinator": {"maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds",
                             "dequeueNumWorkers", "dequeueUseThreads"},
    # helm/dagster/templates/helpers/instance/_concurrency.tpl
    "concurrency": {"pools", "runs"},
    "concurrency.pools": {"defaultLimit", "granularity", "opGranularityRunBuffer"},
}


def _sections(values: dict) -> list[tuple[str, dict]]:
    out = [(k, values[k]) for k in ("dagsterWebserver", "dagsterDaemon") if k in values]
    out += [("deployment", d) for d in values.get("dagster-user-deployments", {}).get("deployments", [])]
    launcher = values.get("runLauncher", {}).get("config", {}).get("k8sRunLauncher")
    if launcher:
        out += [("k8sRunLauncher", launcher), ("runK8sConfig", launcher.get("runK8sConfig", {}))]
    if "computeLogManager" in values:
        out.append(("s3ComputeLogManager", values["computeLogManager"]["config"]["s3ComputeLogManager"]))
    if "concurrency" in values:
        out += [("concurrency", values["concurrency"]), ("concurrency.pools", values["concurrency"].get("pools", {}))]
    coordinator = values.get("dagsterDaemon", {}).get("runCoordinator")
    if coordinator:
        out.append(("queuedRunCoordinator", coordinator["config"]["queuedRunCoordinator"]))
    return out


@pytest.mark.parametrize("name", HELM_VALUES)
def test_helm_values_use_only_keys_the_chart_schema_allows(name):
    values = helm_values(name)
    for section, body in _sections(values):
        unknown = set(body) - CHART_KEYS[section]
        assert not unknown, f"{name}: {section} has keys the chart refuses: {sorted(unknown)}"
    for deployment in values["dagster-user-deployments"]["deployments"]:
        # ReadinessProbeWithEnabled: `enabled` is required when the probe is given.
        assert "enabled" in deployment.get("readinessProbe", {"enabled": True}), deployment["name"]
        assert isinstance(deployment["port"], int) and deployment.get("replicaCount", 1) > 0


def test_chart_key_check_catches_a_misspelt_key():
    values = helm_values()
    values["dagsterWebserver"]["podSecurityContex"] = {}
    assert any(set(body) - CHART_KEYS[section] for section, body in _sections(values))


def test_k8s_profile_runs_every_job_on_the_k8s_job_executor(tmp_path):
    """The k8s profile's Definitions launch each step as a Job with exactly the executor config in
    deploy/helm (Dagster's resolved config, defaults filled in); the local profile keeps Dagster's
    default multiprocess executor."""
    home = str(tmp_path)
    k8s = build_definitions(load_settings({"LLAMA_PLATFORM_PROFILE": "k8s", "LLAMA_PLATFORM_HOME": home}))
    local = build_definitions(load_settings({"LLAMA_PLATFORM_HOME": home}))
    assert {j.executor_def.name for j in k8s.resolve_all_job_defs()} == {"k8s_job_executor"}
    assert {j.executor_def.name for j in local.resolve_all_job_defs()} == {"multi_or_in_process_executor"}
    for job in ("train_and_deploy_job", "train", "ingest_job"):
        from_code, from_file = dagster_jobs.profile_executor_configs(job, LLAMA_PLATFORM_HOME=home)
        assert from_code == from_file, job
        assert from_code["service_account_name"] == DAGSTER_RUN and from_code["job_namespace"] == DAGSTER_NS
    # In-cluster by default (the run pod's account); a kubeconfig setting reaches the executor.
    assert "kubeconfig_file" not in from_code
    config, _ = dagster_jobs.profile_executor_configs(LLAMA_PLATFORM_HOME=home, LLAMA_PLATFORM_KUBECONFIG="/etc/kube/config")
    assert (config["load_incluster_config"], config["kubeconfig_file"]) == (False, "/etc/kube/config")


def test_executor_and_helm_values_agree():
    """Step Jobs run where, and as whom, the chart runs the run Jobs and the code server, with the
    settings ConfigMap and the S3 Secret the run launcher passes too."""
    exc, values = dagster_jobs.executor_config(), helm_values()
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert exc["job_namespace"] == launcher["jobNamespace"] == DAGSTER_NS
    assert exc["service_account_name"] == values["dagster-user-deployments"]["serviceAccount"]["name"] == DAGSTER_RUN
    assert {c["name"] for c in launcher["envConfigMaps"]} <= set(exc["env_config_maps"])
    # Steps run the same asset code as the run pod (e.g. the deploy step's smoke test needs the
    # serving client key), so they get every Secret the run launcher passes.
    assert {s["name"] for s in launcher["envSecrets"]} <= set(exc["env_secrets"])
    step, run = dagster_jobs.step_job(), dagster_jobs.run_job()
    step_pod, run_pod = step["spec"]["template"]["spec"], run["spec"]["template"]["spec"]
    assert step_pod["securityContext"] == run_pod["securityContext"]
    assert step_pod["containers"][0]["securityContext"] == run_pod["containers"][0]["securityContext"]
    assert step_pod["containers"][0]["resources"]["limits"], "step containers need limits"


def test_every_pool_the_assets_name_is_limited_in_the_cluster_as_locally():
    """Steps are limited across runs by Dagster pools (the assets' `pool=`): dagster.yaml locally,
    the chart's `concurrency.pools` in the cluster, with the same default limit. Run-tag limits count
    only on tags some job carries (a limit on another tag limits nothing)."""
    from llama_platform.definitions import defs

    pools = {a.op.pool for a in defs.assets if a.op.pool}
    assert {"training", "forge-api"} <= pools
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())["concurrency"]["pools"]["default_limit"]
    assert helm_values()["concurrency"]["pools"]["defaultLimit"] == local == 1
    job_tags = {key for job in defs.resolve_all_job_defs() for key in job.tags}
    for name in HELM_VALUES:
        coordinator = helm_values(name).get("dagsterDaemon", {}).get("runCoordinator", {})
        limits = coordinator.get("config", {}).get("queuedRunCoordinator", {}).get("tagConcurrencyLimits", [])
        assert {limit["key"] for limit in limits} <= job_tags, name
