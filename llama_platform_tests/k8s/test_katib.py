"""The Katib Experiment, checked as objects: the search space agrees with the Optuna study's, the
trial Job passes kubernetes-validate --strict, and its command runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import kubernetes_validate
import pytest

from llama_platform.evaluation.search import SEARCH_SPACE
from llama_platform.k8s import common
from llama_platform.k8s.katib import BASE_CONFIG_MOUNT, METRICS_FORMAT, hyperparameter_experiment, to_manifest

K8S_VERSION = "1.33"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return to_manifest(hyperparameter_experiment("triage-hparams", "triage-train-config", max_trials=8))


def test_experiment_metadata_objective_and_algorithm(manifest):
    assert manifest["apiVersion"] == "kubeflow.org/v1beta1" and manifest["kind"] == "Experiment"
    assert manifest["metadata"]["namespace"] == "training"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/part-of"] == "llama-platform"
    spec = manifest["spec"]
    assert spec["objective"] == {"type": "minimize", "objectiveMetricName": "val_loss", "additionalMetricNames": ["final_loss"]}
    assert spec["algorithm"] == {"algorithmName": "tpe"}
    assert spec["maxTrialCount"] == 8 and spec["parallelTrialCount"] == 2
    with pytest.raises(ValueError):
        hyperparameter_experiment("x", "cm", max_trials=1, parallel_trials=2)


def test_search_space_is_the_optuna_studys(manifest):
    params = {p["name"]: p for p in manifest["spec"]["parameters"]}
    assert list(params) == [p.name for p in SEARCH_SPACE]
    assert params["learning_rate"]["parameterType"] == "double"
    assert params["learning_rate"]["feasibleSpace"] == {"min": "0.0005", "max": "0.01", "distribution": "logUniform"}
    assert params["lora_r"]["feasibleSpace"] == {"list": ["4", "8", "16"]}
    assert params["max_steps"]["feasibleSpace"] == {"min": "40", "max": "200", "step": "40", "distribution": "uniform"}
    # Every trial parameter refers to a searched parameter and is used in the trial's command.
    template = manifest["spec"]["trialTemplate"]
    command = " ".join(template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"])
    for tp in template["trialParameters"]:
        assert tp["reference"] in params
        assert "${trialParameters.%s}" % tp["name"] in command
    assert set(re.findall(r"\$\{trialParameters\.(\w+)\}", command)) == {tp["name"] for tp in template["trialParameters"]}


def test_metrics_filter_reads_the_trainers_last_line(manifest):
    assert manifest["spec"]["metricsCollectorSpec"]["collector"] == {"kind": "StdOut"}
    line = json.dumps({"first_loss": 6.1, "final_loss": 0.42, "val_loss": 1.5e-1, "model_uri": None})
    pattern = re.compile(manifest["spec"]["metricsCollectorSpec"]["source"]["filter"]["metricsFormat"][0])
    assert pattern.pattern == METRICS_FORMAT and pattern.groups == 2
    assert dict(pattern.findall(line)) == {"first_loss": "6.1", "final_loss": "0.42", "val_loss": "0.15"}


def test_trial_job_is_a_valid_restricted_gpu_job_of_the_trainer(manifest):
    template = manifest["spec"]["trialTemplate"]
    job = template["trialSpec"]
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == common.SERVICE_ACCOUNTS["trainer"][1]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["nodeSelector"] == common.GPU_NODE_SELECTOR
    assert pod["tolerations"][0]["key"] == common.GPU_TAINT_KEY
    container = pod["containers"][0]
    assert container["name"] == template["primaryContainerName"]
    assert container["image"] == common.DEFAULT_IMAGES["trainer"]
    assert container["resources"]["limits"][common.GPU_RESOURCE] == "1"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Endpoints from the platform ConfigMap, keys from the Secret, as in the training pod.
    assert container["envFrom"] == [{"configMapRef": {"name": common.CONFIG_MAP}}, {"secretRef": {"name": common.S3_SECRET}}]
    assert {"name": "base-config", "mountPath": BASE_CONFIG_MOUNT, "readOnly": True} in container["volumeMounts"]
    assert {"name": "base-config", "configMap": {"name": "triage-train-config"}} in pod["volumes"]
    assert "python -m llama_platform.training.train --config /tmp/trial.json" in container["command"][-1]


def test_trial_command_writes_the_trial_config(manifest, tmp_path):
    """Run the command's config step as Katib would after substituting the trial's values."""
    (tmp_path / "train_config.json").write_text(json.dumps({"training_set_path": "s3://b/ts.parquet", "max_steps": 1}))
    script = manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    values = {"learning_rate": "0.003", "lora_r": "16", "max_steps": "80"}
    for name, value in values.items():
        script = script.replace("${trialParameters.%s}" % name, value)
    config_step = script.split(" && ")[0].replace(BASE_CONFIG_MOUNT, str(tmp_path)).replace("/tmp/trial.json", str(tmp_path / "t.json"))
    config_step = config_step.replace("python ", f"{sys.executable} ", 1)
    subprocess.run(["sh", "-c", config_step], check=True)
    cfg = json.loads((tmp_path / "t.json").read_text())
    assert cfg == {"training_set_path": "s3://b/ts.parquet", "max_steps": 80, "learning_rate": 0.003, "lora_r": 16,
                   "registered_model_name": None}
