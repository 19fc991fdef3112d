"""The objects built in code (llama_platform/k8s, and the Jobs dagster-k8s builds from our config)
and the manifests in deploy/ use the same namespaces, ServiceAccounts, security contexts, labels,
GPU placement, Secrets and images: both are rendered here and compared.

BUILDERS lists the code that builds objects at run time. When a module under llama_platform/k8s
gains builders (training pods and TrainJobs in training.py, InferenceServices and Seldon objects in
serving.py), add a no-argument callable per object kind here: test_every_k8s_module_is_covered
fails until every module is listed in COVERED_MODULES.
"""

from __future__ import annotations

import pkgutil

import pytest
from kubernetes.client import ApiClient, V1Container, V1ObjectMeta, V1Pod, V1PodSpec, V1ResourceRequirements

import llama_platform.k8s
from llama_platform.k8s import common, katib, serving, training
from llama_platform_tests.deploy import dagster_jobs
from llama_platform_tests.deploy.manifests import OVERLAYS, objects, pod_specs

API = ApiClient()


def _common_training_pod() -> dict:
    """A training pod assembled only from common.py's pieces (what training.py builds on)."""
    volumes, mounts = common.scratch_volumes()
    ns, sa = common.SERVICE_ACCOUNTS["trainer"]
    pod = V1Pod(
        api_version="v1", kind="Pod",
        metadata=V1ObjectMeta(name="train-example", namespace=ns, labels=common.labels("training")),
        spec=V1PodSpec(
            service_account_name=sa, automount_service_account_token=False,
            security_context=common.pod_security_context(), node_selector=common.GPU_NODE_SELECTOR,
            tolerations=common.gpu_tolerations(), volumes=volumes, restart_policy="Never",
            containers=[V1Container(
                name="train", image=common.DEFAULT_IMAGES["trainer"],
                command=["python", "-m", "llama_platform.training.train"],
                security_context=common.container_security_context(), volume_mounts=mounts,
                env_from=common.secret_env(common.S3_SECRET),
                resources=V1ResourceRequirements(requests={"cpu": "4", "memory": "32Gi", common.GPU_RESOURCE: "1"},
                                                 limits={"cpu": "8", "memory": "64Gi", common.GPU_RESOURCE: "1"}),
            )],
        ),
    )
    return API.sanitize_for_serialization(pod)


def _pipes_training_pod() -> dict:
    """The pod PipesK8sClient creates from training.pipes_pod_request (base meta + spec)."""
    request = training.pipes_pod_request(run_id="run-1", config_uri="s3://llama-platform/runs/run-1/train.json",
                                         image=common.DEFAULT_IMAGES["trainer"], shape=training.NodeShape(),
                                         active_deadline_s=3600)
    meta = {**request["base_pod_meta"], "name": "train-run-1", "namespace": request["namespace"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": request["base_pod_spec"]}


def _train_job() -> dict:
    job = training.train_job(name="train-run-1", run_id="run-1", config_uri="s3://llama-platform/runs/run-1/train.json",
                             image=common.DEFAULT_IMAGES["trainer"], shape=training.NodeShape(gpus=8), num_nodes=2,
                             active_deadline_s=3600)
    return job.to_dict()


def _katib_experiment() -> dict:
    return katib.to_manifest(katib.hyperparameter_experiment("triage-hparams", "triage-train-config", max_trials=4))


_SERVING_URI = "s3://llama-platform/mlflow/models/m-1/artifacts/model"


def _seldon(kind: str) -> dict:
    return next(o for o in serving.seldon_objects(_SERVING_URI, _SERVING_URI + "-2") if o["kind"] == kind)


BUILDERS = {
    "serving: InferenceService (canary)": lambda: serving.to_dict(serving.inference_service(_SERVING_URI, 10)),
    "serving: Seldon Server": lambda: _seldon("Server"),
    "serving: Seldon Model": lambda: _seldon("Model"),
    "serving: Seldon Experiment": lambda: _seldon("Experiment"),
    "katib: Experiment (trial Job)": _katib_experiment,
    "common: training pod": _common_training_pod,
    "training: Pipes pod": _pipes_training_pod,
    "training: TrainJob": _train_job,
    "dagster-k8s: run Job (Helm values)": dagster_jobs.run_job,
    "dagster-k8s: step Job (k8s_job_executor)": dagster_jobs.step_job,
    "executor: step Job (k8s profile's Definitions)": lambda: dagster_jobs.step_job(
        exc=dagster_jobs.profile_executor_configs()[0]),
}
# status.py builds no objects (it reads pod and TrainJob status).
COVERED_MODULES = {"common", "training", "status", "katib", "serving", "executor"}
# Runtimes a TrainJob may name besides the manifests' own: the Kubeflow Trainer's default.
TRAINER_DEFAULT_RUNTIMES = {("ClusterTrainingRuntime", training.DEFAULT_RUNTIME)}


def test_every_k8s_module_is_covered():
    modules = {m.name for m in pkgutil.iter_modules(llama_platform.k8s.__path__)}
    missing = modules - COVERED_MODULES
    assert not missing, (f"llama_platform/k8s/{sorted(missing)} build objects that no agreement check renders: "
                         "add their builders to BUILDERS and the module to COVERED_MODULES")


class Manifests:
    """What the rendered manifests of one overlay say, for comparison."""

    def __init__(self, overlay: str):
        self.objs = objects(overlay)
        self.namespaces = {o["metadata"]["name"] for o in self.objs if o["kind"] == "Namespace"}
        self.accounts = {(o["metadata"]["namespace"], o["metadata"]["name"])
                         for o in self.objs if o["kind"] == "ServiceAccount"}
        self.secrets = {(o["metadata"]["namespace"], o["spec"]["target"]["name"])
                        for o in self.objs if o["kind"] == "ExternalSecret"}
        self.config_maps = {(o["metadata"]["namespace"], o["metadata"]["name"])
                            for o in self.objs if o["kind"] == "ConfigMap"}
        self.pods = [(o, where, pod, pod_level) for o in self.objs for where, pod, pod_level in pod_specs(o)]
        self.training_runtimes = {(o["kind"], o["metadata"]["name"]) for o in self.objs
                                  if o["kind"] in ("TrainingRuntime", "ClusterTrainingRuntime")}
        self.config_map_keys = {(o["metadata"]["namespace"], o["metadata"]["name"]): set(o.get("data", {}))
                                for o in self.objs if o["kind"] == "ConfigMap"}
        self.serving_runtimes = {o["metadata"]["name"] for o in self.objs if o["kind"] == "ServingRuntime"}

    def pod_context(self) -> dict:
        [ctx] = {repr(p["securityContext"]): p["securityContext"]
                 for _, _, p, pod_level in self.pods if pod_level}.values()
        return ctx

    def container_context(self) -> dict:
        [ctx] = {repr(c["securityContext"]): c["securityContext"]
                 for _, _, p, _ in self.pods for c in p.get("containers", [])}.values()
        return ctx

    def gpu_placement(self) -> tuple[dict, list]:
        runtime = next(o for o in self.objs if o["kind"] == "TrainingRuntime")
        pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
        return pod["nodeSelector"], pod["tolerations"]


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request) -> Manifests:
    return Manifests(request.param)


def test_manifests_use_common_values(manifests):
    assert manifests.namespaces == set(common.NAMESPACES.values())
    assert set(common.SERVICE_ACCOUNTS.values()) <= manifests.accounts
    # One pod and one container security context across every manifest pod: common.py's.
    assert manifests.pod_context() == API.sanitize_for_serialization(common.pod_security_context())
    assert manifests.container_context() == API.sanitize_for_serialization(common.container_security_context())
    selector, tolerations = manifests.gpu_placement()
    assert common.GPU_NODE_SELECTOR.items() <= selector.items()
    assert tolerations == API.sanitize_for_serialization(common.gpu_tolerations())
    # common.py's Secrets are all made by External Secrets where their users run.
    for ns, name in [("dagster", common.S3_SECRET), ("training", common.S3_SECRET), ("serving", common.S3_SECRET),
                     ("data", common.S3_SECRET), ("dagster", common.FORGE_SECRET),
                     ("serving", common.SERVING_KEYS_SECRET), ("data", common.MLFLOW_DB_SECRET),
                     ("dagster", common.SERVING_CLIENT_SECRET), ("monitoring", common.PROMETHEUS_TOKEN_SECRET),
                     ("dagster", common.DAGSTER_DB_SECRET)]:
        assert (ns, name) in manifests.secrets, (ns, name)
    # Platform code runs from common.py's images, as common.py's uid, with its scratch mounts.
    _, mounts = common.scratch_volumes()
    want_mounts = {(m.name, m.mount_path) for m in mounts}
    platform_images = set(common.DEFAULT_IMAGES.values())
    used = set()
    for _, where, pod, _ in manifests.pods:
        for c in pod.get("containers", []):
            if c.get("image", "").split(":")[0] in {i.split(":")[0] for i in platform_images}:
                used.add(c["image"])
                assert want_mounts <= {(m["name"], m["mountPath"]) for m in c["volumeMounts"]}, where
    assert used == platform_images
    # The settings ConfigMap has every key the built pods read one by one (TrainJob env).
    for ns in ("dagster", "training", "serving"):
        assert set(common.CONFIG_MAP_KEYS) <= manifests.config_map_keys[(ns, common.CONFIG_MAP)], ns
    # The training Role grants exactly what the launcher code needs (training.launcher_rbac_rules).
    role = next(o for o in manifests.objs if o["kind"] == "Role" and o["metadata"]["name"] == "dagster-run-training")
    want = [API.sanitize_for_serialization(r) for r in training.launcher_rbac_rules()]
    assert role["rules"] == want
    for o in manifests.objs:
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == common.PART_OF


def _built_pods(obj: dict) -> list[dict]:
    kind = obj["kind"]
    if kind == "Pod":
        return [obj["spec"]]
    if kind == "Job":
        return [obj["spec"]["template"]["spec"]]
    if kind == "InferenceService":
        return [obj["spec"]["predictor"]]
    if kind == "Server" and obj["apiVersion"].startswith("mlops.seldon.io/"):
        return [obj["spec"]["podSpec"]]
    if kind == "Experiment" and obj["apiVersion"].startswith("kubeflow.org/"):
        # Katib: each trial is the Job in the trial template.
        return [obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]]
    if kind == "TrainJob":
        # The pod side of a TrainJob is its runtime patch; the trainer's env and resources are the
        # node container's (merged by name into the patch's container).
        out = []
        for patch in obj["spec"].get("runtimePatches", []):
            for job in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
                pod = job["template"]["spec"]["template"]["spec"]
                trainer = obj["spec"]["trainer"]
                containers = [{**c, "env": trainer.get("env", []), "resources": trainer.get("resourcesPerNode", {})}
                              for c in pod.get("containers", [])]
                out.append({**pod, "containers": containers})
        return out
    return []


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_built_objects_agree_with_manifests(name, manifests):
    obj = BUILDERS[name]()
    ns = obj["metadata"]["namespace"]
    assert ns in manifests.namespaces, f"{name}: namespace {ns} is not in the manifests"
    labels = obj["metadata"].get("labels", {})
    if obj["kind"] != "Job" or "app.kubernetes.io/part-of" in labels:
        assert labels.get("app.kubernetes.io/part-of") == common.PART_OF, name
    if obj["kind"] == "TrainJob":
        runtime = (obj["spec"]["runtimeRef"]["kind"], obj["spec"]["runtimeRef"]["name"])
        assert runtime in manifests.training_runtimes | TRAINER_DEFAULT_RUNTIMES, f"{name}: runtime {runtime}"
    pods = _built_pods(obj)
    assert pods or obj["kind"] in ("Model", "Experiment"), f"{name}: unknown kind {obj['kind']}"
    for pod in pods:
        assert (ns, pod["serviceAccountName"]) in manifests.accounts, f"{name}: account not in the manifests"
        if "securityContext" in pod or obj["kind"] != "InferenceService":
            assert pod["securityContext"] == manifests.pod_context(), name
        for c in pod.get("containers", []):
            assert c["securityContext"] == manifests.container_context(), f"{name}/{c['name']}"
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    assert (ns, source["secretRef"]["name"]) in manifests.secrets, f"{name}: {source}"
                if "configMapRef" in source:
                    assert (ns, source["configMapRef"]["name"]) in manifests.config_maps, f"{name}: {source}"
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    assert (ns, ref["secretKeyRef"]["name"]) in manifests.secrets, f"{name}: {env}"
                if "configMapKeyRef" in ref and not ref["configMapKeyRef"].get("optional"):
                    key = (ns, ref["configMapKeyRef"]["name"])
                    assert ref["configMapKeyRef"]["key"] in manifests.config_map_keys.get(key, set()), f"{name}: {env}"
            if common.GPU_RESOURCE in c.get("resources", {}).get("limits", {}):
                selector, tolerations = manifests.gpu_placement()
                assert selector.items() >= common.GPU_NODE_SELECTOR.items()
                assert pod["nodeSelector"].items() >= common.GPU_NODE_SELECTOR.items(), name
                assert all(t in pod["tolerations"] for t in tolerations), name


def test_agreement_check_catches_drift(manifests):
    """A pod built with another uid, or for an account the manifests do not have, is caught."""
    pod = _common_training_pod()
    pod["spec"]["securityContext"]["runAsUser"] = 1000
    assert pod["spec"]["securityContext"] != manifests.pod_context()
    pod["spec"]["serviceAccountName"] = "default"
    assert ("training", "default") not in manifests.accounts
