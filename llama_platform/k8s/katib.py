"""The hyperparameter search on Kubernetes: a Kubeflow Katib `Experiment` over the same search
space as the local Optuna study (evaluation/search.py), built with the kubeflow-katib SDK's models.

Each trial is a batch/v1 Job in the "training" namespace whose pod is the single-node training pod
(k8s/training.py: trainer image, `trainer` service account, one GPU): it writes its TrainConfig (the base config from a ConfigMap
plus the trial's values) to /tmp, then runs the training entrypoint
`python -m llama_platform.training.train --config /tmp/trial.json`. Katib's StdOut collector reads
the objective from the JSON line the trainer prints last ({"val_loss": ...}). The algorithm is TPE,
as in the Optuna study; the objective is the validation loss, never a test-split metric.
"""

from __future__ import annotations

import shlex
from typing import Sequence

from kubeflow.katib import (
    V1beta1AlgorithmSpec,
    V1beta1CollectorSpec,
    V1beta1Experiment,
    V1beta1ExperimentSpec,
    V1beta1FeasibleSpace,
    V1beta1FilterSpec,
    V1beta1MetricsCollectorSpec,
    V1beta1ObjectiveSpec,
    V1beta1ParameterSpec,
    V1beta1SourceSpec,
    V1beta1TrialParameterSpec,
    V1beta1TrialTemplate,
)
from kubernetes.client import (
    ApiClient,
    V1ConfigMapVolumeSource,
    V1Job,
    V1JobSpec,
    V1ObjectMeta,
    V1PodTemplateSpec,
    V1Volume,
    V1VolumeMount,
)

from llama_platform.evaluation.search import OBJECTIVE, SEARCH_SPACE, Param
from llama_platform.k8s import common
from llama_platform.k8s.training import TRAINER_CONTAINER, NodeShape, training_pod_spec

BASE_CONFIG_MOUNT = "/etc/llama-platform"
BASE_CONFIG_FILE = "train_config.json"
TRIAL_CONFIG = "/tmp/trial.json"
PRIMARY_CONTAINER = TRAINER_CONTAINER
# The trainer's last stdout line is JSON: {"first_loss": 1.2, "final_loss": 0.4, "val_loss": 0.9, ...}.
# Katib wants two groups: the metric's name and its value.
METRICS_FORMAT = r'"([a-z_]+_loss)":\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)'


def _feasible_space(p: Param) -> V1beta1FeasibleSpace:
    if p.kind == "categorical":
        return V1beta1FeasibleSpace(list=[str(c) for c in p.choices])
    return V1beta1FeasibleSpace(
        min=str(p.low), max=str(p.high), step=str(p.step) if p.step else None,
        distribution="logUniform" if p.log else "uniform",
    )


def parameter_specs(space: Sequence[Param] = SEARCH_SPACE) -> list[V1beta1ParameterSpec]:
    return [V1beta1ParameterSpec(name=p.name, parameter_type=p.kind, feasible_space=_feasible_space(p)) for p in space]


def _trial_command(space: Sequence[Param]) -> list[str]:
    sets = " ".join(f"--set {p.name}=${{trialParameters.{p.name}}}" for p in space)
    script = (
        f"python -m llama_platform.evaluation.search trial-config "
        f"--base-config {shlex.quote(f'{BASE_CONFIG_MOUNT}/{BASE_CONFIG_FILE}')} {sets} --out {TRIAL_CONFIG} "
        f"&& exec python -m llama_platform.training.train --config {TRIAL_CONFIG}"
    )
    return ["sh", "-c", script]


def trial_job(image: str, base_config_map: str, space: Sequence[Param] = SEARCH_SPACE,
              shape: NodeShape = NodeShape(), active_deadline_s: int = 6 * 3600) -> V1Job:
    """The Job every trial runs (Katib substitutes ${trialParameters.NAME} before creating it): the
    single-node training pod of k8s/training.py (same shape, env, security, placement) with the
    base TrainConfig mounted from a ConfigMap."""
    pod = training_pod_spec(image=image, command=_trial_command(space), shape=shape, active_deadline_s=active_deadline_s)
    pod.volumes.append(V1Volume(name="base-config", config_map=V1ConfigMapVolumeSource(name=base_config_map)))
    pod.containers[0].volume_mounts.append(V1VolumeMount(name="base-config", mount_path=BASE_CONFIG_MOUNT, read_only=True))
    return V1Job(
        api_version="batch/v1",
        kind="Job",
        spec=V1JobSpec(
            backoff_limit=0,
            template=V1PodTemplateSpec(
                # Katib's metrics collector sidecar must not be joined by an Istio proxy.
                metadata=V1ObjectMeta(labels=common.labels("training", managed_by="katib"),
                                      annotations={"sidecar.istio.io/inject": "false"}),
                spec=pod,
            ),
        ),
    )


def hyperparameter_experiment(
    name: str,
    base_config_map: str,
    image: str = common.DEFAULT_IMAGES["trainer"],
    space: Sequence[Param] = SEARCH_SPACE,
    max_trials: int = 12,
    parallel_trials: int = 2,
    max_failed_trials: int = 3,
) -> V1beta1Experiment:
    """A Katib Experiment minimising the validation loss over `space` with TPE."""
    if not 1 <= parallel_trials <= max_trials:
        raise ValueError("need 1 <= parallel_trials <= max_trials")
    namespace, _ = common.SERVICE_ACCOUNTS["trainer"]
    job = ApiClient().sanitize_for_serialization(trial_job(image, base_config_map, space))
    return V1beta1Experiment(
        api_version="kubeflow.org/v1beta1",
        kind="Experiment",
        metadata=V1ObjectMeta(name=name, namespace=namespace, labels=common.labels("training", managed_by="dagster")),
        spec=V1beta1ExperimentSpec(
            objective=V1beta1ObjectiveSpec(type="minimize", objective_metric_name=OBJECTIVE,
                                           additional_metric_names=["final_loss"]),
            algorithm=V1beta1AlgorithmSpec(algorithm_name="tpe"),
            parameters=parameter_specs(space),
            max_trial_count=max_trials,
            parallel_trial_count=parallel_trials,
            max_failed_trial_count=max_failed_trials,
            metrics_collector_spec=V1beta1MetricsCollectorSpec(
                collector=V1beta1CollectorSpec(kind="StdOut"),
                source=V1beta1SourceSpec(filter=V1beta1FilterSpec(metrics_format=[METRICS_FORMAT])),
            ),
            trial_template=V1beta1TrialTemplate(
                primary_container_name=PRIMARY_CONTAINER,
                trial_parameters=[
                    V1beta1TrialParameterSpec(name=p.name, reference=p.name, description=f"TrainConfig.{p.name}")
                    for p in space
                ],
                trial_spec=job,
            ),
        ),
    )


def to_manifest(experiment: V1beta1Experiment) -> dict:
    """The Experiment as the dict `kubectl apply` / CustomObjectsApi take (camelCase, no Nones)."""
    return ApiClient().sanitize_for_serialization(experiment)
