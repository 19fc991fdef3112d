"""The one Definitions: assets, checks, resources, sensors and jobs for the active profile."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    EnvVar,
    PipesSubprocessClient,
    define_asset_job,
)

from llama_platform.assets.cleaning import clean
from llama_platform.assets.evaluation import model_evaluation
from llama_platform.assets.features import issue_features, training_set
from llama_platform.assets.raw import make_repo_registry_sensor, raw_issues, repo_partitions
from llama_platform.assets.serving import deployed_endpoint
from llama_platform.assets.snapshot import issue_snapshot
from llama_platform.assets.training import finetuned_checkpoint
from llama_platform.resources.feast import FeastResource
from llama_platform.resources.forges import ForgeResource
from llama_platform.resources.io_manager import ParquetIOManager
from llama_platform.resources.mlflow import MLflowResource
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform.resources.serving import LocalEndpointResource
from llama_platform.resources.training import TrainingResource
from llama_platform.settings import (
    GITEE_TOKEN_ENV,
    GITHUB_TOKEN_ENV,
    S3_ACCESS_KEY_ENV,
    S3_SECRET_KEY_ENV,
    SERVING_API_KEY_ENV,
    Settings,
    load_settings,
)

ASSETS = [
    raw_issues,
    clean,
    issue_snapshot,
    issue_features,
    training_set,
    finetuned_checkpoint,
    model_evaluation,
    deployed_endpoint,
]

ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.assets(raw_issues),
    partitions_def=repo_partitions,
    description="Fetch one repo partition of raw issues from its forge.",
)
train_and_deploy_job = define_asset_job(
    "train_and_deploy_job",
    selection=AssetSelection.all() - AssetSelection.assets(raw_issues),
    description="Everything downstream of raw issues: clean, snapshot, features, train, evaluate, deploy.",
)


def _secret(name: str, settings: Settings):
    # EnvVar keeps secrets out of the UI and run config; optional secrets stay None when unset.
    return EnvVar(name) if name in settings.secrets_present else None


def build_resources(settings: Settings) -> dict:
    """Resources for the active profile (local: folders, sqlite, subprocesses; k8s: the same code
    pointed at MinIO / the MLflow server by settings, with training pods added in a later issue)."""
    s3_keys = {}
    if settings.store_is_s3:
        s3_keys = {"access_key": EnvVar(S3_ACCESS_KEY_ENV), "secret_key": EnvVar(S3_SECRET_KEY_ENV)}
    store = dict(url=settings.store_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region, **s3_keys)
    return {
        "parquet_io_manager": ParquetIOManager(**store),
        "object_store": ObjectStoreResource(**store),
        "forges": ForgeResource(
            github_base_url=settings.github_api_url,
            gitee_base_url=settings.gitee_api_url,
            github_token=_secret(GITHUB_TOKEN_ENV, settings),
            gitee_token=_secret(GITEE_TOKEN_ENV, settings),
        ),
        "feast": FeastResource(data_dir=str(settings.home / "feast")),
        "training": TrainingResource(
            work_dir=str(settings.home / "training"),
            max_steps=settings.train_steps,
            batch_size=settings.train_batch_size,
        ),
        "mlflow": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            experiment=settings.mlflow_experiment,
            registered_model_name=settings.registered_model_name,
            ui_url=settings.mlflow_ui_url,
            artifact_location=settings.mlflow_artifact_location,
        ),
        "pipes_subprocess_client": PipesSubprocessClient(),
        "endpoint": LocalEndpointResource(
            host=settings.serve_host,
            port=settings.serve_port,
            state_dir=str(settings.home / "serving"),
            tracking_uri=settings.mlflow_tracking_uri,
            api_key=_secret(SERVING_API_KEY_ENV, settings),
            feature_repo=str(settings.home / "feast" / "repo"),
        ),
    }


def build_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=ASSETS,
        jobs=[ingest_job, train_and_deploy_job],
        sensors=[make_repo_registry_sensor(settings.repos_file, settings.repos_override)],
        resources=build_resources(settings),
    )


defs = build_definitions(load_settings())
