"""The one Definitions: assets, checks, resources, sensors and jobs for the active profile."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    PipesSubprocessClient,
    define_asset_job,
)

from llama_platform.assets.baseline import baseline_model
from llama_platform.assets.cleaning import clean, no_secret_survives
from llama_platform.assets.error_analysis import error_analysis
from llama_platform.assets.evaluation import model_evaluation
from llama_platform.assets.features import issue_features, training_set
from llama_platform.assets.health import endpoint_answers, endpoint_health_job
from llama_platform.assets.raw import (
    RAW_ASSET,
    build_raw_issues,
    make_freshness_sensor,
    make_repo_registry_sensor,
)
from llama_platform.assets.report import ReportNotebookIOManager, dataset_report
from llama_platform.assets.serving import deployed_endpoint
from llama_platform.assets.snapshot import issue_snapshot, snapshot_schema
from llama_platform.assets.training import finetuned_checkpoint
from llama_platform.k8s.executor import step_executor
from llama_platform.resources.cleaning import CleaningResource
from llama_platform.resources.evaluation import EvaluationResource
from llama_platform.resources.feast import FeastResource
from llama_platform.resources.forges import ForgeResource
from llama_platform.resources.io_manager import ParquetIOManager
from llama_platform.resources.kubernetes import KubernetesResource
from llama_platform.resources.mlflow import MLflowResource
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform.resources.serving import KServeEndpointResource, LocalEndpointResource
from llama_platform.resources.training import TrainingResource
from llama_platform.settings import (
    GITEE_TOKEN_ENV,
    GITHUB_APP_PRIVATE_KEY_ENV,
    GITHUB_TOKEN_ENV,
    S3_ACCESS_KEY_ENV,
    S3_SECRET_KEY_ENV,
    SERVING_API_KEY_ENV,
    Settings,
    load_settings,
)

DOWNSTREAM_ASSETS = [
    clean,
    issue_snapshot,
    dataset_report,
    issue_features,
    training_set,
    finetuned_checkpoint,
    baseline_model,
    model_evaluation,
    error_analysis,
    deployed_endpoint,
]
ASSET_CHECKS = [no_secret_survives, snapshot_schema, endpoint_answers]

train_and_deploy_job = define_asset_job(
    "train_and_deploy_job",
    selection=AssetSelection.all() - AssetSelection.assets(RAW_ASSET, "dataset_report", "error_analysis"),
    description="Everything downstream of raw issues: clean, snapshot, features, train, evaluate, deploy.",
    tags={"llama_platform/stage": "all"},
)
# dagstermill runs its notebook through a reconstructable job (see dataset_report_job_def).
dataset_report_job = define_asset_job(
    "dataset_report_job",
    selection=AssetSelection.assets("dataset_report"),
    description="Run the data-quality notebook on the latest snapshot.",
    tags={"llama_platform/stage": "report"},
)
error_analysis_job = define_asset_job(
    "error_analysis_job",
    selection=AssetSelection.assets("error_analysis"),
    description="Run the error-analysis notebook on the latest evaluation.",
    tags={"llama_platform/stage": "error_analysis"},
)

# One named job per stage, in graph order: `llama-platform run` launches these, so every run in the
# UI says what it did (not `__ephemeral_asset_job__`). (job name, asset keys, description)
STAGE_JOBS = [
    ("cleaning", ["cleaned_issues", "quarantined_issues"], "Raw -> cleaned + quarantined issues, with reconciliation."),
    ("snapshot", ["issue_snapshot"], "Write the content-addressed dataset snapshot with its splits."),
    ("report", ["dataset_report"], "Run the data-quality notebook on the latest snapshot."),
    ("features", ["issue_features"], "Apply the Feast feature views and materialise the online store."),
    ("training_examples", ["training_set"], "Point-in-time-correct, prompt-formatted training examples."),
    ("train", ["finetuned_checkpoint"], "LoRA fine-tune, logged to MLflow and registered."),
    ("baseline", ["baseline_model"], "The H2O AutoML baseline the fine-tune must beat."),
    ("evaluate", ["model_evaluation"], "Held-out evaluation and the promotion gate."),
    ("error_analysis", ["error_analysis"], "Run the error-analysis notebook on the evaluation."),
    ("deploy", ["deployed_endpoint"], "Serve the registered model and smoke-test it."),
]
stage_jobs = [
    define_asset_job(name, selection=AssetSelection.assets(*keys), description=desc,
                     tags={"llama_platform/stage": name})
    for name, keys, desc in STAGE_JOBS
    if name not in ("report", "error_analysis")  # notebook jobs, above
]


def _secret(name: str, settings: Settings):
    # EnvVar keeps secrets out of the UI and run config; optional secrets stay None when unset.
    return EnvVar(name) if name in settings.secrets_present else None


def build_resources(settings: Settings) -> dict:
    """Resources for the active profile (local: folders, sqlite, subprocesses; k8s: the same code
    pointed at MinIO / the MLflow server by settings; training as a GPU pod or a TrainJob)."""
    s3_keys = {}
    if settings.store_is_s3:
        s3_keys = {"access_key": EnvVar(S3_ACCESS_KEY_ENV), "secret_key": EnvVar(S3_SECRET_KEY_ENV)}
    store = dict(url=settings.store_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region, **s3_keys)
    resources = {
        "parquet_io_manager": ParquetIOManager(**store),
        "object_store": ObjectStoreResource(**store),
        "forges": ForgeResource(
            checkpoint_dir=str(settings.home / "checkpoints"),
            github_base_url=settings.github_api_url,
            gitee_base_url=settings.gitee_api_url,
            github_token=_secret(GITHUB_TOKEN_ENV, settings),
            gitee_token=_secret(GITEE_TOKEN_ENV, settings),
            max_wait_s=settings.forge_max_wait_s,
            github_app_id=settings.github_app_id,
            github_app_installation_id=settings.github_app_installation_id,
            github_app_private_key=_secret(GITHUB_APP_PRIVATE_KEY_ENV, settings),
            github_app_private_key_path=str(settings.github_app_private_key_path) if settings.github_app_private_key_path else None,
        ),
        "feast": FeastResource(data_dir=str(settings.home / "feast")),
        "cleaning": CleaningResource(spill_dir=str(settings.home / "spill"), workers=settings.clean_workers),
        "training": TrainingResource(
            work_dir=str(settings.home / "training"),
            max_steps=settings.train_steps,
            batch_size=settings.train_batch_size,
            launcher="k8s" if settings.profile == "k8s" else "subprocess",
            model_path=settings.train_model_path,
            model_hash=settings.train_model_hash,
            method=settings.train_method,
        ),
        # Used only when training.launcher is "k8s"; building it calls nothing.
        "kubernetes": KubernetesResource(
            namespace=settings.train_namespace,
            nodes=settings.train_nodes,
            gpus_per_node=settings.train_gpus,
            gpu_product=settings.train_gpu_product,
            cpu=settings.train_cpu,
            memory=settings.train_memory,
            kubeconfig_file=settings.kubeconfig,
            **({"trainer_image": settings.trainer_image} if settings.trainer_image else {}),
        ),
        "mlflow": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            experiment=settings.mlflow_experiment,
            registered_model_name=settings.registered_model_name,
            ui_url=settings.mlflow_ui_url,
            artifact_location=settings.mlflow_artifact_location,
        ),
        "evaluation": EvaluationResource(
            enforce_gate=settings.gate_enforced,
            baseline_max_runtime_secs=settings.baseline_seconds,
            baseline_ablation=settings.baseline_ablation,
        ),
        "pipes_subprocess_client": PipesSubprocessClient(),
        "output_notebook_io_manager": ReportNotebookIOManager(base_dir=str(settings.home / "notebooks")),
        "endpoint": LocalEndpointResource(
            host=settings.serve_host,
            port=settings.serve_port,
            state_dir=str(settings.home / "serving"),
            tracking_uri=settings.mlflow_tracking_uri,
            api_key=_secret(SERVING_API_KEY_ENV, settings),
            feature_repo=str(settings.home / "feast" / "repo"),
        ),
    }
    if settings.profile == "k8s" and settings.serving_url and settings.prometheus_url:
        # The champion as an InferenceService, rolled out by canary (resources/serving.py).
        resources["endpoint"] = KServeEndpointResource(
            tracking_uri=settings.mlflow_tracking_uri, public_url=settings.serving_url,
            prometheus_url=settings.prometheus_url, api_key=_secret(SERVING_API_KEY_ENV, settings),
            kubeconfig_file=settings.kubeconfig,
        )
    return resources


def build_definitions(settings: Settings) -> Definitions:
    raw_issues = build_raw_issues(settings.history_start)
    ingest_job = define_asset_job(
        "ingest_job",
        selection=AssetSelection.assets(raw_issues),
        partitions_def=raw_issues.partitions_def,
        description="Fetch raw issues for a set of repo x month partitions (one forge pass per repo).",
        tags={"llama_platform/stage": "ingest"},
    )
    return Definitions(
        assets=[raw_issues, *DOWNSTREAM_ASSETS],
        asset_checks=ASSET_CHECKS,
        jobs=[ingest_job, train_and_deploy_job, dataset_report_job, error_analysis_job, *stage_jobs, endpoint_health_job],
        sensors=[
            make_repo_registry_sensor(settings.repos_file, settings.repos_override, raw_issues),
            make_freshness_sensor(raw_issues),
            AutomationConditionSensorDefinition(
                "automation_sensor",
                target=AssetSelection.all(),
                default_status=DefaultSensorStatus.RUNNING if settings.automation_on else DefaultSensorStatus.STOPPED,
                minimum_interval_seconds=30,
                description="Evaluates the assets' automation conditions: an asset is rebuilt when an upstream's "
                "data version or its own code version changed, never just because an upstream was re-written.",
            ),
        ],
        resources=build_resources(settings),
        # k8s: each step a Job (dagster-k8s); local: Dagster's default multiprocess executor.
        executor=step_executor(settings.kubeconfig) if settings.profile == "k8s" else None,
    )


defs = build_definitions(load_settings())


def dataset_report_job_def():
    """Module-level so dagster.reconstructable() can rebuild the report job in the notebook kernel."""
    return defs.resolve_job_def("dataset_report_job")


def error_analysis_job_def():
    """Module-level for dagster.reconstructable(), like dataset_report_job_def."""
    return defs.resolve_job_def("error_analysis_job")
