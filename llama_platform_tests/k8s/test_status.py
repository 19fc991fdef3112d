"""Reading pod and TrainJob status on payloads shaped like the API server's (deserialized by the
official client exactly as `read_namespaced_pod` does)."""

from __future__ import annotations

import json

import pytest
from kubernetes.client import ApiClient, V1Pod

from llama_platform.k8s.status import pod_outcome, rank0_step, train_job_failure, train_job_outcome

T0 = "2026-11-30T01:00:00Z"


class _Response:
    def __init__(self, payload: dict):
        self.data = json.dumps(payload)


def pod(name: str, status: dict) -> V1Pod:
    payload = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "training", "creationTimestamp": T0},
               "spec": {"containers": [{"name": "trainer", "image": "ghcr.io/llama-platform/trainer:0.1.0"}]},
               "status": status}
    return ApiClient().deserialize(_Response(payload), "V1Pod")


def terminated(code: int, reason: str, message: str | None = None, name: str = "trainer") -> dict:
    term = {"exitCode": code, "reason": reason, "startedAt": T0, "finishedAt": T0, "containerID": "containerd://ab12"}
    if message:
        term["message"] = message
    return {"name": name, "ready": False, "restartCount": 0, "image": "ghcr.io/llama-platform/trainer:0.1.0",
            "imageID": "", "state": {"terminated": term}}


EVICTED = pod("dagster-train-evicted", {
    "phase": "Failed", "reason": "Evicted", "startTime": T0,
    "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. "
               "Container trainer was using 70Gi, request is 64Gi, has larger consumption of memory. ",
    "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                    "message": "The node was low on resource: memory.", "lastTransitionTime": T0}],
    "containerStatuses": [terminated(137, "ContainerStatusUnknown", "The container could not be located when the pod was terminated")],
})
OOM = pod("dagster-train-oom", {
    "phase": "Failed", "startTime": T0,
    "containerStatuses": [terminated(137, "OOMKilled")],
})
IMAGE_PULL = pod("dagster-train-pull", {
    "phase": "Pending", "startTime": T0,
    "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}],
    "containerStatuses": [{"name": "trainer", "ready": False, "restartCount": 0, "image": "ghcr.io/llama-platform/trainer:0.1.0",
                           "imageID": "", "state": {"waiting": {"reason": "ImagePullBackOff",
                                                                "message": 'Back-off pulling image "ghcr.io/llama-platform/trainer:0.1.0"'}}}],
})
MISSING_SECRET = pod("dagster-train-secret", {
    "phase": "Pending", "startTime": T0,
    "containerStatuses": [{"name": "trainer", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
                           "state": {"waiting": {"reason": "CreateContainerConfigError",
                                                 "message": 'secret "llama-platform-s3" not found'}}}],
})
COMPLETED = pod("dagster-train-done", {
    "phase": "Succeeded", "startTime": T0, "containerStatuses": [terminated(0, "Completed")],
})
PREEMPTED = pod("dagster-train-preempted", {
    "phase": "Failed", "startTime": T0,
    "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                    "message": "training/train-hi: preempting to accommodate a higher priority pod", "lastTransitionTime": T0}],
    "containerStatuses": [terminated(143, "Error")],
})
CRASHED = pod("dagster-train-crash", {
    "phase": "Failed", "startTime": T0,
    "containerStatuses": [terminated(1, "Error", "ValueError: loss is NaN at step 412 (lr 2e-4)\n")],
})
DEADLINE = pod("dagster-train-deadline", {
    "phase": "Failed", "reason": "DeadlineExceeded", "startTime": T0,
    "message": "Pod was active on the node longer than the specified deadline",
})
UNSCHEDULABLE = pod("dagster-train-wait", {
    "phase": "Pending",
    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": T0,
                    "message": "0/12 nodes are available: 12 Insufficient nvidia.com/gpu."}],
})
RUNNING = pod("dagster-train-run", {
    "phase": "Running", "startTime": T0,
    "containerStatuses": [{"name": "trainer", "ready": True, "restartCount": 0, "image": "x", "imageID": "",
                           "state": {"running": {"startedAt": T0}}}],
})


@pytest.mark.parametrize("p, state, reason, preempted, says", [
    (EVICTED, "failed", "Evicted", True, "low on resource: memory"),
    (OOM, "failed", "OOMKilled", False, "ran out of memory"),
    (IMAGE_PULL, "failed", "ImagePullBackOff", False, "Back-off pulling image"),
    (MISSING_SECRET, "failed", "CreateContainerConfigError", False, "llama-platform-s3"),
    (COMPLETED, "succeeded", "Completed", False, ""),
    (PREEMPTED, "failed", "PreemptionByScheduler", True, "higher priority"),
    (CRASHED, "failed", "Error", False, "loss is NaN"),
    (DEADLINE, "failed", "DeadlineExceeded", False, "deadline"),
    (UNSCHEDULABLE, "pending", "Unschedulable", False, "Insufficient nvidia.com/gpu"),
    (RUNNING, "running", "", False, ""),
], ids=["evicted", "oom", "image-pull", "missing-secret", "completed", "preempted", "crash", "deadline", "unschedulable", "running"])
def test_pod_outcome(p, state, reason, preempted, says):
    outcome = pod_outcome(p)
    assert (outcome.state, outcome.reason, outcome.preempted) == (state, reason, preempted)
    assert says in outcome.describe()


def test_preempted_outcome_says_a_rerun_resumes():
    assert "resumes from the last checkpoint" in pod_outcome(EVICTED).describe()
    assert "resumes" not in pod_outcome(OOM).describe()


def train_job_payload(conditions: list[dict], jobs: list[dict] | None = None) -> dict:
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "train-6f1c2a8e-a1b2c3", "namespace": "training"},
            "spec": {"runtimeRef": {"name": "torch-distributed"}},
            "status": {"conditions": [{"lastTransitionTime": T0, "message": "", **c} for c in conditions],
                       **({"jobsStatus": jobs} if jobs is not None else {})}}


def _job(active=0, failed=0, succeeded=0) -> dict:
    return {"name": "node", "active": active, "failed": failed, "ready": active, "succeeded": succeeded, "suspended": 0}


CREATED = {"type": "Created", "status": "True", "reason": "JobsCreationSucceeded", "message": "succeeded to create Jobs"}


@pytest.mark.parametrize("payload, state, reason", [
    (train_job_payload([]), "pending", "Created"),
    (train_job_payload([CREATED], [_job(active=1)]), "running", ""),
    (train_job_payload([CREATED, {"type": "Complete", "status": "True", "reason": "AllJobsCompleted",
                                  "message": "jobset completed successfully"}], [_job(succeeded=1)]), "succeeded", "AllJobsCompleted"),
    (train_job_payload([CREATED, {"type": "Failed", "status": "True", "reason": "FailedJobs",
                                  "message": "jobset failed due to one or more job failures (first failed job: train-6f1c2a8e-a1b2c3-node-0)"}],
                       [_job(failed=1)]), "failed", "FailedJobs"),
    (train_job_payload([CREATED, {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                                  "message": "TrainJob exceeded its active deadline"}]), "failed", "DeadlineExceeded"),
    (train_job_payload([{"type": "Suspended", "status": "True", "reason": "Suspended", "message": "TrainJob is suspended"}]),
     "pending", "Suspended"),
    # A condition that flipped back to False does not count.
    (train_job_payload([CREATED, {"type": "Suspended", "status": "False", "reason": "Resumed"}], [_job(active=1)]), "running", ""),
], ids=["created", "running", "complete", "failed", "deadline", "suspended", "resumed"])
def test_train_job_outcome(payload, state, reason):
    outcome = train_job_outcome(payload)
    assert (outcome.state, outcome.reason) == (state, reason)


def test_failed_train_job_names_the_pod_that_caused_it():
    failed = train_job_outcome(train_job_payload([{"type": "Failed", "status": "True", "reason": "FailedJobs",
                                                   "message": "jobset failed due to one or more job failures"}]))
    # Rank 1 was evicted; rank 0 then died on an NCCL timeout. The eviction is the reason.
    explained = train_job_failure(failed, [CRASHED, EVICTED, RUNNING])
    assert explained.reason == "Evicted" and explained.preempted
    assert "pod dagster-train-evicted" in explained.message and "FailedJobs" in explained.message
    assert train_job_failure(failed, [OOM]).reason == "OOMKilled"
    assert train_job_failure(failed, []) == failed  # pods already gone: the job's own reason stands


def _at(p: V1Pod, created: str) -> V1Pod:
    payload = ApiClient().sanitize_for_serialization(p)
    payload["metadata"]["creationTimestamp"] = created
    return ApiClient().deserialize(_Response(payload), "V1Pod")


RUNNING_JOB = train_job_payload([CREATED], [_job(active=1)])


def test_rank0_step_while_a_train_job_starts():
    assert rank0_step(train_job_payload([]), []).action == "wait"
    assert rank0_step(RUNNING_JOB, [UNSCHEDULABLE]).action == "wait"
    step = rank0_step(RUNNING_JOB, [RUNNING])
    assert (step.action, step.pod_name) == ("stream", "dagster-train-run")
    assert rank0_step(RUNNING_JOB, [COMPLETED]).action == "stream"  # short run: read the finished pod's log
    step = rank0_step(RUNNING_JOB, [IMAGE_PULL])
    assert (step.action, step.outcome.reason) == ("fail", "ImagePullBackOff")
    failed_job = train_job_payload([{"type": "Failed", "status": "True", "reason": "FailedJobs"}])
    step = rank0_step(failed_job, [RUNNING])
    assert (step.action, step.pod_name) == ("finish", "dagster-train-run")  # the job's end wins; its log is still read
    assert rank0_step(RUNNING_JOB, [OOM]).action == "finish"  # ran and died: the TrainJob's verdict explains it
    # After a restart the newest rank-0 pod decides, not the evicted one still listed.
    old, new = _at(EVICTED, "2026-11-30T01:00:00Z"), _at(RUNNING, "2026-11-30T01:05:00Z")
    assert rank0_step(RUNNING_JOB, [old, new]).action == "stream"
