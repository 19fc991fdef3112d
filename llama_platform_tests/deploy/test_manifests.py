"""deploy/k8s builds with kubectl's kustomize, and every object validates: core kinds with
kubernetes-validate --strict (unknown fields fail), CRD kinds with their SDK model or CRD schema."""

from __future__ import annotations

import copy
import json

import kubernetes_validate
import pytest
import yaml
from feast.repo_config import load_repo_config

from llama_platform.k8s import common
from llama_platform_tests.deploy import crds
from llama_platform_tests.deploy.manifests import K8S, OVERLAYS, is_core, objects, ref

# The oldest Kubernetes the platform supports (Pod Security labels, policy/v1, batch TTL) and the
# newest schema kubernetes-validate 1.37 ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_with_every_namespace_and_component(overlay):
    objs = objects(overlay)
    kinds = {o["kind"] for o in objs}
    assert {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"} == set(common.NAMESPACES.values())
    for kind in ("ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "ExternalSecret", "SecretStore",
                 "StatefulSet", "Deployment", "Service", "Ingress", "Certificate", "ConfigMap",
                 "ServingRuntime", "Server", "TrainingRuntime", "PodMonitor"):
        assert kind in kinds, f"{overlay} renders no {kind}"
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for workload in (("StatefulSet", "minio"), ("Deployment", "mlflow"), ("StatefulSet", "redis"),
                     ("Deployment", "feast"), ("Deployment", "oauth2-proxy")):
        assert workload in names, f"{overlay} lacks {workload}"
    # Every object belongs to the platform and, unless cluster-scoped, to one of its namespaces.
    for o in objs:
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == common.PART_OF, ref(o)
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] in common.NAMESPACES.values(), ref(o)


def test_overlays_differ_where_they_should():
    dev, prod = objects("dev"), objects("prod")

    def find(objs, kind, name):
        return next((o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name), None)

    assert find(dev, "StatefulSet", "minio")["spec"]["replicas"] == 1
    assert find(prod, "StatefulSet", "minio")["spec"]["replicas"] == 4
    assert find(prod, "Deployment", "mlflow")["spec"]["replicas"] >= 2
    # prod: managed Postgres behind the same in-cluster name; dev: the StatefulSet.
    assert find(dev, "StatefulSet", "postgres") is not None
    assert find(prod, "StatefulSet", "postgres") is None
    assert find(prod, "Service", "postgres")["spec"]["type"] == "ExternalName"
    assert {o["kind"] for o in prod} >= {"PodDisruptionBudget"}
    # prod: GPU pools for training (8 GPUs a node) and serving.
    node = find(prod, "TrainingRuntime", "llama-platform-torch")["spec"]["template"]["spec"]["replicatedJobs"][0]
    pod = node["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["llama-platform/node-pool"] == "gpu-training"
    assert pod["containers"][0]["resources"]["limits"][common.GPU_RESOURCE] == "8"
    runtime = find(prod, "ServingRuntime", "llama-platform-predictor")
    assert runtime["spec"]["nodeSelector"]["llama-platform/node-pool"] == "gpu-serving"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_validate_strictly(version):
    # Each distinct object once (the overlays share most of the base).
    unique = {json.dumps(o, sort_keys=True): o for overlay in OVERLAYS for o in objects(overlay) if is_core(o)}
    assert len(unique) > 100
    errors = {}
    for obj in unique.values():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors[ref(obj)] = exc.message
    assert not errors, errors


def test_strict_validation_catches_a_misplaced_field():
    deployment = next(o for o in objects("dev") if o["kind"] == "Deployment")
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {"runAsNonRoot": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_crd_objects_validate_against_their_schemas(overlay):
    custom = [o for o in objects(overlay) if not is_core(o)]
    assert {o["kind"] for o in custom} >= {"Certificate", "ExternalSecret", "SecretStore", "ServingRuntime",
                                           "Server", "TrainingRuntime", "PodMonitor"}
    # crd_errors raises KeyError for a kind without a validator: no CRD kind goes unchecked.
    errors = {ref(o): crd_errors for o in custom if (crd_errors := crds.crd_errors(o))}
    assert not errors, errors


def _first(kind):
    return copy.deepcopy(next(o for o in objects("prod") if o["kind"] == kind))


@pytest.mark.parametrize("kind, breaks", [
    ("Certificate", lambda o: o["spec"].update(dnsName=["x.example.com"])),
    ("Certificate", lambda o: o["spec"]["privateKey"].update(algorithm="DSA")),
    ("ExternalSecret", lambda o: o["spec"]["data"][0].pop("remoteRef")),
    ("ExternalSecret", lambda o: o["spec"]["secretStoreRef"].update(kind="VaultStore")),
    ("SecretStore", lambda o: o["spec"]["provider"]["vault"]["auth"]["kubernetes"].update(serviceAccount="x")),
    ("Server", lambda o: o["spec"].update(replica=2)),
    ("Server", lambda o: o["spec"]["podSpec"].update(serviceAcountName="model-server")),
    ("Server", lambda o: o["spec"]["podSpec"]["securityContext"].update(runAsUser="10001")),
    ("ServingRuntime", lambda o: o["spec"]["containers"][0].update(securitycontext={})),
    ("ServingRuntime", lambda o: o["spec"].update(multiModel="yes")),
    ("TrainingRuntime", lambda o: o["spec"]["mlPolicy"].update(numProcPerNode=8)),
    ("TrainingRuntime", lambda o: o["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
     ["spec"]["containers"][0].update(resource={})),
])
def test_crd_validators_catch_errors(kind, breaks):
    obj = _first(kind)
    assert crds.crd_errors(obj) == []
    breaks(obj)
    assert crds.crd_errors(obj), f"a broken {kind} passed"


def test_feast_feature_store_config_loads_as_feast_serve_loads_it(monkeypatch):
    repo = K8S / "base" / "feast"
    raw = (repo / "feature_store.yaml").read_text()
    assert "${REDIS_PASSWORD}" in raw  # a reference only: the value comes from the Secret-backed env
    monkeypatch.setenv("REDIS_PASSWORD", "from-the-secret")
    config = load_repo_config(repo, repo / "feature_store.yaml")
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string.endswith("password=from-the-secret")
    assert config.registry.path == "s3://llama-platform/feast/registry.db"
    assert config.entity_key_serialization_version == 3


def test_settings_configmap_is_read_by_settings_py():
    from llama_platform.settings import load_settings

    for overlay in OVERLAYS:
        maps = [o for o in objects(overlay) if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "llama-platform-config"]
        assert {m["metadata"]["namespace"] for m in maps} == {"dagster", "training", "serving"}
        for cm in maps:
            settings = load_settings(cm["data"])
            assert settings.profile == "k8s"
            assert settings.store_is_s3 and settings.s3_endpoint_url.startswith("http://minio.data.svc")
            assert settings.mlflow_tracking_uri == "http://mlflow.data.svc.cluster.local:5000"
            assert not settings.secrets_present  # no secret in a ConfigMap
