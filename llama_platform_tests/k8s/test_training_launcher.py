"""finetuned_checkpoint picks its launcher by profile. No Kubernetes API server can run here, so the
k8s path is run for real up to that boundary: inputs staged in a real S3 server (SeaweedFS), the
config a valid TrainConfig with s3:// paths, and the step's first API call aimed at the right
resource (a pod, or a TrainJob when nodes > 1) in the training namespace of the configured cluster.
"""

from __future__ import annotations

import io
import json

import dagster as dg
import pandas as pd
import pytest

from llama_platform.assets.training import K8S_RUNS_PREFIX, finetuned_checkpoint
from llama_platform.definitions import build_resources
from llama_platform.resources.kubernetes import KubernetesResource
from llama_platform.resources.mlflow import MLflowResource
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform.resources.training import TrainingResource
from llama_platform.services import free_port
from llama_platform.settings import SettingsError, load_settings
from llama_platform.training.config import TrainConfig


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    # One sqlite tracking store for the module: creating its schema is most of a test's time.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_profile_picks_the_launcher(tmp_path):
    local = build_resources(load_settings({"LLAMA_PLATFORM_HOME": str(tmp_path)}))
    assert local["training"].launcher == "subprocess"
    assert isinstance(local["pipes_subprocess_client"], dg.PipesSubprocessClient)

    env = {"LLAMA_PLATFORM_PROFILE": "k8s", "LLAMA_PLATFORM_HOME": str(tmp_path), "LLAMA_PLATFORM_TRAIN_GPUS": "4",
           "LLAMA_PLATFORM_TRAIN_GPU_PRODUCT": "NVIDIA-H200", "LLAMA_PLATFORM_TRAINER_IMAGE": "registry.local/trainer:2"}
    k8s = build_resources(load_settings(env))
    assert k8s["training"].launcher == "k8s"
    kube: KubernetesResource = k8s["kubernetes"]
    assert not kube.multi_node and kube.namespace == "training"
    spec = kube.pod_request("run-1", "s3://b/c.json", attempt="a")["base_pod_spec"]
    assert spec["containers"][0]["image"] == "registry.local/trainer:2"
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert spec["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H200"

    multi = build_resources(load_settings({**env, "LLAMA_PLATFORM_TRAIN_NODES": "2"}))["kubernetes"]
    assert multi.multi_node and multi.train_job_body("t", "run-1", "s3://b/c.json", {})["spec"]["trainer"]["numNodes"] == 2


def _kubeconfig(path, port: int) -> str:
    # A cluster address where nothing listens: the client gets "connection refused" on its first call.
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "test", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "training"}}],
    }))
    return str(path)


@pytest.mark.parametrize("nodes, api_path", [
    (1, "/api/v1/namespaces/training/pods"),
    (2, "/apis/trainer.kubeflow.org/v1alpha1/namespaces/training/trainjobs"),
], ids=["pod", "trainjob"])
def test_k8s_profile_stages_inputs_then_calls_the_cluster(tmp_path, mlflow_uri, s3_server, s3_bucket, nodes, api_path):
    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": ["bug", "feature", "question"],
                          "split": ["train", "train", "val"]})

    @dg.asset(name="training_set")
    def training_set_stub() -> pd.DataFrame:
        return frame

    store_url = f"s3://{s3_bucket}/platform"
    resources = {
        "training": TrainingResource(work_dir=str(tmp_path / "work"), launcher="k8s"),
        "mlflow": MLflowResource(tracking_uri=mlflow_uri),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
        "object_store": ObjectStoreResource(url=store_url, endpoint_url=s3_server.endpoint_url,
                                            access_key=s3_server.access_key, secret_key=s3_server.secret_key),
        "kubernetes": KubernetesResource(nodes=nodes, kubeconfig_file=_kubeconfig(tmp_path / "kubeconfig", free_port()),
                                         poll_interval_s=0.1),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize([training_set_stub, finetuned_checkpoint], resources=resources,
                                instance=instance, raise_on_error=False)
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        error = failure.event_specific_data.error.to_string()
    assert failure.step_key == "finetuned_checkpoint"
    assert api_path in error and "Connection refused" in error

    # What the pod would have read: a valid TrainConfig pointing at the staged data.
    s3 = s3_server.client()
    prefix = f"platform/{K8S_RUNS_PREFIX}/{result.run_id}"
    config = TrainConfig.from_dict(json.loads(s3.get_object(Bucket=s3_bucket, Key=f"{prefix}/train_config.json")["Body"].read()))
    assert config.training_set_path == f"{store_url}/{K8S_RUNS_PREFIX}/{result.run_id}/training_set.parquet"
    assert config.output_dir.startswith("/home/app/")  # pod scratch, not this machine's work dir
    assert config.tags["dagster_run_id"] == result.run_id
    staged = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=s3_bucket, Key=f"{prefix}/training_set.parquet")["Body"].read()))
    pd.testing.assert_frame_equal(staged, frame)
    assert not (tmp_path / "work").exists()  # nothing written locally for a pod


def test_k8s_launcher_refuses_a_local_store(tmp_path, mlflow_uri):
    @dg.asset(name="training_set")
    def training_set_stub() -> pd.DataFrame:
        return pd.DataFrame({"text": ["a"], "label": ["bug"], "split": ["train"]})

    resources = {
        "training": TrainingResource(work_dir=str(tmp_path / "work"), launcher="k8s"),
        "mlflow": MLflowResource(tracking_uri=mlflow_uri),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
        "object_store": ObjectStoreResource(url=(tmp_path / "store").as_uri()),
        "kubernetes": KubernetesResource(),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize([training_set_stub, finetuned_checkpoint], resources=resources,
                                instance=instance, raise_on_error=False)
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "needs an s3:// object store" in failure.event_specific_data.error.to_string()


@pytest.mark.parametrize("name, value", [("LLAMA_PLATFORM_TRAIN_NODES", "0"), ("LLAMA_PLATFORM_TRAIN_GPUS", "-1"),
                                         ("LLAMA_PLATFORM_TRAIN_NODES", "two")])
def test_bad_training_shape_is_a_settings_error(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
