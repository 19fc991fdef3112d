"""Reading a training pod's or TrainJob's status: pure functions, so every case is testable on a
recorded status payload without an API server. The launcher polls, these decide.

Written here rather than taken from dagster-k8s: its `wait_for_pod` raises on failure but keeps
the reason in free text, and it has no TrainJob support; the Kubeflow SDK's `wait_for_job_status`
only says "Failed". A platform user needs to read *why* (evicted, OOM, image pull, deadline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from kubernetes.client import V1ContainerStatus, V1Pod

State = Literal["pending", "running", "succeeded", "failed"]

# Waiting reasons that do not resolve by waiting (kubelet retries image pulls with back-off, but a
# wrong image or a missing Secret needs a person).
FATAL_WAITING_REASONS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
    "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
})
# DisruptionTarget condition reasons (Kubernetes >= 1.26): the pod was killed from outside.
PREEMPTION_REASONS = frozenset({
    "PreemptionByScheduler", "PreemptionByKubeScheduler", "DeletionByTaintManager",
    "EvictionByEvictionAPI", "DeletionByPodGC", "TerminationByKubelet",
})


@dataclass(frozen=True)
class Outcome:
    state: State
    reason: str = ""
    message: str = ""
    # True when the work was killed from outside (eviction, preemption, node loss), not by its own
    # error: a re-run resumes from the last checkpoint and may well succeed.
    preempted: bool = False

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed")

    def describe(self) -> str:
        text = f"{self.state}: {self.reason}" if self.reason else self.state
        if self.message:
            text += f" ({self.message})"
        if self.preempted:
            text += "; killed from outside the trainer, a re-run resumes from the last checkpoint"
        return text


def _statuses(pod: V1Pod) -> list[V1ContainerStatus]:
    status = pod.status
    if status is None:
        return []
    return [*(status.init_container_statuses or []), *(status.container_statuses or [])]


def _condition(pod: V1Pod, type_: str):
    for cond in (pod.status.conditions or []) if pod.status else []:
        if cond.type == type_:
            return cond
    return None


def pod_outcome(pod: V1Pod) -> Outcome:
    """Where a training pod stands, and if it failed, why (the most specific reason first)."""
    status = pod.status
    phase = status.phase if status else None
    disruption = _condition(pod, "DisruptionTarget")
    disrupted = disruption is not None and disruption.status == "True"

    if phase == "Failed" and status.reason == "Evicted":
        return Outcome("failed", "Evicted", status.message or "", preempted=True)
    if phase == "Failed" and status.reason == "DeadlineExceeded":
        return Outcome("failed", "DeadlineExceeded", status.message or "activeDeadlineSeconds reached")

    for cs in _statuses(pod):
        term = cs.state.terminated if cs.state else None
        if term is not None and term.exit_code != 0:
            if term.reason == "OOMKilled":
                return Outcome("failed", "OOMKilled",
                               f"container {cs.name} ran out of memory (exit {term.exit_code}); "
                               "raise the memory limit or lower the batch size")
            if disrupted:
                return Outcome("failed", disruption.reason or "Disrupted", disruption.message or "", preempted=True)
            message = f"container {cs.name} exited with code {term.exit_code}"
            if term.message:
                message += f": {term.message.strip()[-500:]}"
            return Outcome("failed", term.reason or "Error", message)
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason in FATAL_WAITING_REASONS:
            return Outcome("failed", waiting.reason, waiting.message or f"container {cs.name} cannot start")

    if phase == "Failed":
        if disrupted:
            return Outcome("failed", disruption.reason or "Disrupted", disruption.message or "", preempted=True)
        return Outcome("failed", status.reason or "Failed", status.message or "")
    if phase == "Succeeded":
        return Outcome("succeeded", "Completed")
    if phase == "Running":
        return Outcome("running")
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.status == "False":
        # Not a failure: the cluster autoscaler may still bring up a GPU node. The caller's timeout decides.
        return Outcome("pending", scheduled.reason or "Unschedulable", scheduled.message or "")
    return Outcome("pending", phase or "Unknown")


def _conditions(train_job: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type"): c for c in (train_job.get("status") or {}).get("conditions") or []}


def train_job_outcome(train_job: Mapping[str, Any]) -> Outcome:
    """Where a TrainJob (the custom object as a dict) stands, from its status conditions:
    Complete / Failed (terminal), Suspended, otherwise created or running."""
    conditions = _conditions(train_job)
    failed = conditions.get("Failed")
    if failed and failed.get("status") == "True":
        reason = failed.get("reason") or "Failed"
        message = failed.get("message") or ""
        return Outcome("failed", reason, message, preempted="evict" in message.lower() or "preempt" in message.lower())
    complete = conditions.get("Complete")
    if complete and complete.get("status") == "True":
        return Outcome("succeeded", complete.get("reason") or "Complete", complete.get("message") or "")
    suspended = conditions.get("Suspended")
    if suspended and suspended.get("status") == "True":
        # e.g. queued by Kueue until GPUs are free: still pending, not failed.
        return Outcome("pending", suspended.get("reason") or "Suspended", suspended.get("message") or "")
    jobs = (train_job.get("status") or {}).get("jobsStatus") or []
    if any((j.get("active") or 0) > 0 for j in jobs):
        return Outcome("running")
    return Outcome("pending", "Created")


def train_job_failure(job: Outcome, pods: list[V1Pod]) -> Outcome:
    """A failed TrainJob's own condition only says "jobset failed due to one or more job failures":
    name the pod that failed and why (evicted, OOM, exit code), preferring a pod's own reason."""
    failures = [(p.metadata.name if p.metadata else "?", pod_outcome(p)) for p in pods]
    failures = [(name, o) for name, o in failures if o.state == "failed"]
    if not failures:
        return job
    # An eviction anywhere explains the others' follow-on failures (NCCL timeouts, lost peers).
    name, first = next(((n, o) for n, o in failures if o.preempted), failures[0])
    message = f"pod {name}: {first.message}" if first.message else f"pod {name}"
    return Outcome("failed", first.reason, f"{message}; TrainJob: {job.reason} {job.message}".strip(),
                   preempted=first.preempted or job.preempted)


@dataclass(frozen=True)
class Rank0Step:
    """What the launcher does next while a TrainJob starts: keep waiting, stream rank 0's logs,
    go straight to the TrainJob's final status, or fail now."""

    action: Literal["wait", "stream", "finish", "fail"]
    pod_name: str | None = None
    outcome: Outcome | None = None


def rank0_step(train_job: Mapping[str, Any], rank0_pods: list[V1Pod]) -> Rank0Step:
    job = train_job_outcome(train_job)
    # A restarted JobSet leaves the old rank-0 pod behind for a while: the newest one counts.
    pods = sorted(rank0_pods, key=lambda p: (p.metadata.creation_timestamp is not None, p.metadata.creation_timestamp),
                  reverse=True)
    if job.done:
        # Named even so: a finished pod's log (and the Pipes messages in it) can still be read.
        return Rank0Step("finish", pod_name=pods[0].metadata.name if pods else None, outcome=job)
    if not pods:
        return Rank0Step("wait", outcome=job)
    outcome = pod_outcome(pods[0])
    if outcome.state in ("running", "succeeded"):
        return Rank0Step("stream", pod_name=pods[0].metadata.name, outcome=outcome)
    if outcome.state == "failed":
        if pods[0].status and pods[0].status.phase == "Failed":
            # It ran and ended: the TrainJob's verdict follows (its failure policy may restart it).
            return Rank0Step("finish", pod_name=pods[0].metadata.name, outcome=outcome)
        # It cannot start (image, missing Secret): the TrainJob would wait forever.
        return Rank0Step("fail", pod_name=pods[0].metadata.name, outcome=outcome)
    return Rank0Step("wait", pod_name=pods[0].metadata.name, outcome=outcome)
