"""MLflow tracking + model registry settings as a Dagster resource."""

from __future__ import annotations

from typing import Optional

from dagster import ConfigurableResource

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


class MLflowResource(ConfigurableResource):
    tracking_uri: str
    experiment: str = "llama-platform"
    registered_model_name: str = "llama4-issue-triage"
    # Where a person can browse runs (an `mlflow server`/`mlflow ui` started by `make run`), if any.
    ui_url: Optional[str] = None
    # Where the experiment keeps artifacts (a folder URI locally, s3:// on MinIO); set on creation.
    artifact_location: Optional[str] = None

    def client(self):
        """A client on our tracking store *and* its registry: MLflow otherwise takes the registry from
        process-wide state (mlflow.set_registry_uri / MLFLOW_REGISTRY_URI) that other code may have set."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def ensure_experiment(self) -> str:
        """Create the experiment with our artifact location if it is new; return its id."""
        client = self.client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            exp_id = client.create_experiment(self.experiment, artifact_location=self.artifact_location)
        else:
            exp_id = exp.experiment_id
        if exp is None or exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            # MLflow 3's UI opens an experiment of unknown kind on its (empty) traces page; this
            # kind opens it on the runs table.
            client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp_id

    def describe_model_version(self, version: str, description: str) -> None:
        """Give a registered model version a description a newcomer can read in the MLflow UI."""
        self.client().update_model_version(
            self.registered_model_name, str(version), description=description
        )

    def run_link(self, experiment_id: str | None, run_id: str) -> str:
        if self.ui_url and experiment_id:
            return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
        return f"{self.tracking_uri} run {run_id}"

    def model_link(self, version: str) -> str:
        if self.ui_url:
            return f"{self.ui_url.rstrip('/')}/#/models/{self.registered_model_name}/versions/{version}"
        return f"models:/{self.registered_model_name}/{version}"
