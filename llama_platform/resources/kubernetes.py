"""Kubernetes as a Dagster resource: where training runs in the k8s profile and on what hardware.

One node: the training pod through `PipesK8sClient` (it injects the Pipes env, streams the pod's
logs into the run and reads the trainer's reported results from them). Several nodes: a Kubeflow
`TrainJob`, created with the CustomObjectsApi; the same Pipes session is opened by hand, its env
goes into the TrainJob's trainer env, and the rank-0 pod's logs are streamed with dagster-k8s's
log reader, so a multi-node run reports to Dagster exactly like a single pod. A failure, an
eviction or a preemption becomes a `dagster.Failure` that says which pod failed and why.

The objects come from llama_platform.k8s.training, the decisions from llama_platform.k8s.status
(pure); this module only talks to the API server.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Optional

import kubernetes
from dagster import AssetExecutionContext, ConfigurableResource, Failure, MetadataValue
from dagster._core.pipes.client import PipesClientCompletedInvocation
from dagster._core.pipes.utils import PipesEnvContextInjector, open_pipes_session
from dagster_k8s import PipesK8sClient
from dagster_k8s.pipes import PipesK8sPodLogsMessageReader

from llama_platform.k8s.common import DEFAULT_IMAGES, NAMESPACES
from llama_platform.k8s.status import Outcome, pod_outcome, rank0_step, train_job_failure, train_job_outcome
from llama_platform.k8s.training import (
    DEFAULT_RUNTIME,
    TRAINJOB_GROUP,
    TRAINJOB_PLURAL,
    TRAINJOB_VERSION,
    NodeShape,
    pipes_pod_request,
    rank0_selector,
    train_job,
    train_job_selector,
)

# Identifies one launch (a retried step launches again under the same run id).
ATTEMPT_LABEL = "llama-platform.io/attempt"


class KubernetesResource(ConfigurableResource):
    namespace: str = NAMESPACES["training"]
    trainer_image: str = DEFAULT_IMAGES["trainer"]
    nodes: int = 1  # > 1: a TrainJob on the `runtime` ClusterTrainingRuntime
    gpus_per_node: int = 1
    gpu_product: Optional[str] = None  # nvidia.com/gpu.product to pin, e.g. NVIDIA-H100-80GB-HBM3
    cpu: str = "8"
    memory: str = "64Gi"
    shm_size: str = "16Gi"
    scratch_size: str = "100Gi"
    runtime: str = DEFAULT_RUNTIME
    active_deadline_s: int = 24 * 3600  # the cluster kills the run after this (pod and TrainJob)
    schedule_timeout_s: int = 3600  # how long a pod may stay unschedulable (e.g. waiting for a GPU node)
    poll_interval_s: float = 10.0
    # None: in-cluster config (the Dagster run pod's service account); else a kubeconfig file.
    kubeconfig_file: Optional[str] = None
    kube_context: Optional[str] = None
    delete_on_completion: bool = True

    # --- what is launched (pure: no API calls) ---

    def shape(self) -> NodeShape:
        return NodeShape(gpus=self.gpus_per_node, gpu_product=self.gpu_product, cpu=self.cpu,
                         memory=self.memory, shm_size=self.shm_size, scratch_size=self.scratch_size)

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1

    def pipes_client(self) -> PipesK8sClient:
        return PipesK8sClient(
            load_incluster_config=self.kubeconfig_file is None and self.kube_context is None,
            kubeconfig_file=self.kubeconfig_file,
            kube_context=self.kube_context,
            poll_interval=self.poll_interval_s,
        )

    def pod_request(self, run_id: str, config_uri: str, attempt: str) -> dict[str, Any]:
        request = pipes_pod_request(run_id=run_id, config_uri=config_uri, image=self.trainer_image,
                                    shape=self.shape(), active_deadline_s=self.active_deadline_s,
                                    namespace=self.namespace)
        request["base_pod_meta"]["labels"][ATTEMPT_LABEL] = attempt
        return request

    def train_job_body(self, name: str, run_id: str, config_uri: str, extra_env: dict[str, str]) -> dict[str, Any]:
        job = train_job(name=name, run_id=run_id, config_uri=config_uri, image=self.trainer_image,
                        shape=self.shape(), num_nodes=self.nodes, active_deadline_s=self.active_deadline_s,
                        namespace=self.namespace, runtime=self.runtime, extra_env=extra_env)
        return job.to_dict()

    # --- talking to the cluster ---

    def api_client(self):
        if self.kubeconfig_file is None and self.kube_context is None:
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            return kubernetes.client.ApiClient(configuration)
        return kubernetes.config.new_client_from_config(config_file=self.kubeconfig_file, context=self.kube_context)

    def run_pod(self, context: AssetExecutionContext, config_uri: str) -> PipesClientCompletedInvocation:
        """One GPU pod through PipesK8sClient; on failure, the pod's own status says why."""
        attempt = secrets.token_hex(4)
        request = self.pod_request(context.run_id, config_uri, attempt)
        context.log.info(f"training pod in namespace {self.namespace}: {self.gpus_per_node} GPU(s), image {self.trainer_image}")
        try:
            return self.pipes_client().run(
                context=context,
                pod_wait_timeout=self.active_deadline_s + self.schedule_timeout_s,
                # Kept until we have read why it failed; deleted below either way.
                delete_pod_on_completion=False,
                **request,
            )
        except Exception as exc:
            failed = self._failed_pods(f"{ATTEMPT_LABEL}={attempt}")
            if not failed:
                raise
            name, outcome = failed[0]
            raise self._failure(f"training pod {name}", outcome) from exc
        finally:
            if self.delete_on_completion:
                self._cleanup(context, lambda: self._delete_pods(f"{ATTEMPT_LABEL}={attempt}"))

    def run_train_job(self, context: AssetExecutionContext, config_uri: str) -> PipesClientCompletedInvocation:
        """A TrainJob over `nodes` nodes; rank 0 reports to Dagster over Pipes (its pod logs)."""
        api = self.api_client()
        core, custom = kubernetes.client.CoreV1Api(api), kubernetes.client.CustomObjectsApi(api)
        name = f"train-{context.run_id[:8]}-{secrets.token_hex(3)}"
        reader = PipesK8sPodLogsMessageReader()
        with open_pipes_session(context=context, context_injector=PipesEnvContextInjector(), message_reader=reader) as session:
            body = self.train_job_body(name, context.run_id, config_uri, dict(session.get_bootstrap_env_vars()))
            custom.create_namespaced_custom_object(TRAINJOB_GROUP, TRAINJOB_VERSION, self.namespace, TRAINJOB_PLURAL, body)
            context.log.info(f"TrainJob {self.namespace}/{name}: {self.nodes} nodes x {self.gpus_per_node} GPU(s), runtime {self.runtime}")
            try:
                rank0 = self._wait_for_rank0(core, custom, name)
                if rank0 is not None:
                    # Follows until the rank-0 container exits: its log lines and Pipes messages reach the run.
                    try:
                        reader.consume_pod_logs(context=context, core_api=core, pod_name=rank0, namespace=self.namespace)
                    except kubernetes.client.ApiException as exc:
                        # e.g. the pod was evicted before its container started: the verdict below says why.
                        context.log.warning(f"could not read the log of {rank0}: {exc.status} {exc.reason}")
                outcome = self._wait_for_train_job(custom, name)
                if outcome.state == "failed":
                    pods = self._pods(core, train_job_selector(name))
                    raise self._failure(f"TrainJob {name}", train_job_failure(outcome, pods))
            finally:
                if self.delete_on_completion:
                    self._cleanup(context, lambda: custom.delete_namespaced_custom_object(
                        TRAINJOB_GROUP, TRAINJOB_VERSION, self.namespace, TRAINJOB_PLURAL, name,
                        propagation_policy="Foreground"))
        return PipesClientCompletedInvocation(session)

    def _get_train_job(self, custom, name: str) -> dict:
        return custom.get_namespaced_custom_object(TRAINJOB_GROUP, TRAINJOB_VERSION, self.namespace, TRAINJOB_PLURAL, name)

    def _pods(self, core, selector: str) -> list:
        return list(core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def _failed_pods(self, selector: str) -> list[tuple[str, Outcome]]:
        """The failed pods under `selector` with why; [] when the API cannot tell us (the caller
        then raises the original error rather than one about reading the pods)."""
        try:
            pods = self._pods(kubernetes.client.CoreV1Api(self.api_client()), selector)
        except Exception:
            return []
        outcomes = [(p.metadata.name, pod_outcome(p)) for p in pods]
        return [(n, o) for n, o in outcomes if o.state == "failed"]

    @staticmethod
    def _cleanup(context: AssetExecutionContext, delete) -> None:
        # Best effort: a failed delete must not hide why the run failed (activeDeadlineSeconds and
        # the namespace's TTL policies still bound what is left behind).
        try:
            delete()
        except Exception as exc:  # noqa: BLE001
            context.log.warning(f"could not delete the training objects: {exc}")

    def _delete_pods(self, selector: str) -> None:
        core = kubernetes.client.CoreV1Api(self.api_client())
        for pod in self._pods(core, selector):
            core.delete_namespaced_pod(pod.metadata.name, self.namespace)

    def _wait_for_rank0(self, core, custom, name: str) -> str | None:
        """The rank-0 pod whose log to read once it runs or has ended (None: the TrainJob ended
        without one); fails if it cannot start or the TrainJob does not start in time."""
        deadline = time.monotonic() + self.schedule_timeout_s
        while True:
            step = rank0_step(self._get_train_job(custom, name), self._pods(core, rank0_selector(name)))
            if step.action in ("stream", "finish"):
                return step.pod_name
            if step.action == "fail":
                raise self._failure(f"TrainJob {name} rank-0 pod {step.pod_name}", step.outcome)
            if time.monotonic() > deadline:
                raise Failure(description=f"TrainJob {name} did not start within {self.schedule_timeout_s}s: "
                                          f"{step.outcome.describe() if step.outcome else 'no rank-0 pod'}")
            time.sleep(self.poll_interval_s)

    def _wait_for_train_job(self, custom, name: str) -> Outcome:
        # Rank 0 has exited; the other nodes and the controller follow within a few polls.
        deadline = time.monotonic() + self.active_deadline_s
        while True:
            outcome = train_job_outcome(self._get_train_job(custom, name))
            if outcome.done or time.monotonic() > deadline:
                return outcome if outcome.done else Outcome("failed", "Timeout", outcome.describe())
            time.sleep(self.poll_interval_s)

    @staticmethod
    def _failure(what: str, outcome: Outcome) -> Failure:
        return Failure(
            description=f"{what} {outcome.describe()}",
            metadata={"reason": MetadataValue.text(outcome.reason),
                      "preempted": MetadataValue.bool(outcome.preempted)},
            # An eviction or preemption is worth a retry (it resumes from the last checkpoint);
            # an OOM or a crash is not.
            allow_retries=outcome.preempted,
        )
