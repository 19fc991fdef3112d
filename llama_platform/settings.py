"""Profile and configuration: the only module that reads the environment.

Everything else receives a `Settings` (or values derived from it), so tests can build one
from an explicit dict and nothing depends on ambient state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Mapping

PROFILES = ("local", "k8s")
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_REPOS_FILE = PACKAGE_DIR / "repos.yaml"
SHIPPED_CORPUS_DIR = PACKAGE_DIR / "replay" / "corpus"

# Names of the env vars that hold secrets. Resources get them as dagster.EnvVar so the value
# is resolved at run time and never shown in the UI, logs or run config.
GITHUB_TOKEN_ENV = "GITHUB_TOKEN"
GITEE_TOKEN_ENV = "GITEE_TOKEN"
SERVING_API_KEY_ENV = "LLAMA_PLATFORM_API_KEY"
S3_ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
S3_SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
# A GitHub App's private key (PEM text); or give its file as GITHUB_APP_PRIVATE_KEY_PATH.
GITHUB_APP_PRIVATE_KEY_ENV = "GITHUB_APP_PRIVATE_KEY"
SECRET_ENV_VARS = (GITHUB_TOKEN_ENV, GITEE_TOKEN_ENV, SERVING_API_KEY_ENV, S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV,
                   GITHUB_APP_PRIVATE_KEY_ENV)


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    profile: str = "local"
    home: Path = Path(".llama_platform").resolve()
    # Object store root: a local folder (file://...) or an S3 URL (s3://bucket/prefix).
    store_url: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    repos_file: Path = DEFAULT_REPOS_FILE
    repos_override: tuple[str, ...] = ()
    # Forge endpoints. In the local profile they point at the replay forge unless overridden.
    replay_url: str | None = None
    github_base_url: str = "https://api.github.com"
    gitee_base_url: str = "https://gitee.com/api/v5"
    corpus_dir: Path = SHIPPED_CORPUS_DIR
    mlflow_tracking_uri: str = ""
    mlflow_experiment: str = "llama-platform"
    registered_model_name: str = "llama4-issue-triage"
    serve_host: str = "127.0.0.1"
    serve_port: int = 8080
    # Whether the declarative-automation sensor starts running (the UI can toggle it either way).
    automation_on: bool = True
    # First update-time window of raw_issues (monthly partitions from here on).
    history_start: str = "2024-01-01"
    train_steps: int = 200
    train_batch_size: int = 16
    # Processes the preprocessor cleans chunks in (1: in the step's own process).
    clean_workers: int = 1
    mlflow_ui_url: str | None = None
    # GitHub App auth (instead of GITHUB_TOKEN): app id, installation id, and the private key's file
    # (or its PEM in the secret GITHUB_APP_PRIVATE_KEY).
    github_app_id: str | None = None
    github_app_installation_id: int | None = None
    github_app_private_key_path: Path | None = None
    # Longest single wait for a forge's rate limit or retry; longer ones fail with RateLimitExhausted.
    forge_max_wait_s: float = 60.0
    # The promotion gate: "enforce" blocks deployment on refusal; "advise" records the refusal as a
    # warning (the local profile's tiny CPU model is not expected to beat the H2O baseline).
    gate_enforced: bool = True
    # Time box of the H2O AutoML baseline.
    baseline_seconds: int = 30
    # Feature-group ablation on the baseline (several more H2O fits: off by default to keep `make run` short).
    baseline_ablation: bool = False
    # Names (never values) of the secret env vars that are set; resources read them as EnvVar.
    secrets_present: frozenset[str] = frozenset()
    # k8s profile training: the trainer image (None: the release's), nodes (> 1: a TrainJob) and the
    # shape of each node; kubeconfig None means in-cluster (the Dagster run pod's service account).
    trainer_image: str | None = None
    train_namespace: str = "training"
    train_nodes: int = 1
    train_gpus: int = 1
    train_gpu_product: str | None = None
    train_cpu: str = "8"
    train_memory: str = "64Gi"
    kubeconfig: str | None = None

    @property
    def store_is_s3(self) -> bool:
        return self.store_url.startswith("s3://")

    @property
    def mlflow_artifact_location(self) -> str:
        return (self.home / "mlartifacts").as_uri()

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def github_api_url(self) -> str:
        return f"{self.replay_url}/github" if self.replay_url else self.github_base_url

    @property
    def gitee_api_url(self) -> str:
        return f"{self.replay_url}/gitee/api/v5" if self.replay_url else self.gitee_base_url


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _at_least(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    value = _int(env, name, default)
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def _date(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    try:
        datetime.strptime(raw, "%Y-%m-%d")
    except ValueError as exc:
        raise SettingsError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from exc
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables (documented in README's configuration table)."""
    env = os.environ if env is None else env
    profile = env.get("LLAMA_PLATFORM_PROFILE", "local")
    if profile not in PROFILES:
        raise SettingsError(f"LLAMA_PLATFORM_PROFILE must be one of {PROFILES}, got {profile!r}")
    home = Path(env.get("LLAMA_PLATFORM_HOME", ".llama_platform")).resolve()
    store_url = env.get("LLAMA_PLATFORM_STORE_URL") or (home / "store").as_uri()
    if not (store_url.startswith("file://") or store_url.startswith("s3://")):
        raise SettingsError(f"LLAMA_PLATFORM_STORE_URL must be file:// or s3://, got {store_url!r}")
    repos_override = tuple(
        r.strip() for r in env.get("LLAMA_PLATFORM_REPOS", "").split(",") if r.strip()
    )
    gate = env.get("LLAMA_PLATFORM_GATE") or ("enforce" if profile == "k8s" else "advise")
    if gate not in ("enforce", "advise"):
        raise SettingsError(f"LLAMA_PLATFORM_GATE must be enforce or advise, got {gate!r}")
    return Settings(
        profile=profile,
        home=home,
        store_url=store_url,
        s3_endpoint_url=env.get("LLAMA_PLATFORM_S3_ENDPOINT_URL") or None,
        s3_region=env.get("AWS_REGION", "us-east-1"),
        repos_file=Path(env.get("LLAMA_PLATFORM_REPOS_FILE", str(DEFAULT_REPOS_FILE))),
        repos_override=repos_override,
        replay_url=env.get("LLAMA_PLATFORM_REPLAY_URL") or None,
        github_base_url=env.get("GITHUB_BASE_URL", "https://api.github.com"),
        gitee_base_url=env.get("GITEE_BASE_URL", "https://gitee.com/api/v5"),
        corpus_dir=Path(env.get("LLAMA_PLATFORM_CORPUS_DIR", str(SHIPPED_CORPUS_DIR))),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        mlflow_experiment=env.get("LLAMA_PLATFORM_MLFLOW_EXPERIMENT", "llama-platform"),
        registered_model_name=env.get("LLAMA_PLATFORM_MODEL_NAME", "llama4-issue-triage"),
        serve_host=env.get("LLAMA_PLATFORM_SERVE_HOST", "127.0.0.1"),
        serve_port=_int(env, "LLAMA_PLATFORM_SERVE_PORT", 8080),
        history_start=_date(env, "LLAMA_PLATFORM_HISTORY_START", "2024-01-01"),
        automation_on=env.get("LLAMA_PLATFORM_AUTOMATION", "on") != "off",
        train_steps=_int(env, "LLAMA_PLATFORM_TRAIN_STEPS", 200),
        train_batch_size=_int(env, "LLAMA_PLATFORM_TRAIN_BATCH_SIZE", 16),
        clean_workers=_int(env, "LLAMA_PLATFORM_CLEAN_WORKERS", 1),
        mlflow_ui_url=env.get("LLAMA_PLATFORM_MLFLOW_UI_URL") or None,
        github_app_id=env.get("GITHUB_APP_ID") or None,
        github_app_installation_id=_int(env, "GITHUB_APP_INSTALLATION_ID", 0) or None,
        github_app_private_key_path=Path(env["GITHUB_APP_PRIVATE_KEY_PATH"]) if env.get("GITHUB_APP_PRIVATE_KEY_PATH") else None,
        forge_max_wait_s=_float(env, "LLAMA_PLATFORM_FORGE_MAX_WAIT_S", 60.0),
        gate_enforced=gate == "enforce",
        baseline_seconds=_int(env, "LLAMA_PLATFORM_BASELINE_SECONDS", 30),
        baseline_ablation=env.get("LLAMA_PLATFORM_BASELINE_ABLATION", "off") == "on",
        secrets_present=frozenset(n for n in SECRET_ENV_VARS if env.get(n)),
        trainer_image=env.get("LLAMA_PLATFORM_TRAINER_IMAGE") or None,
        train_namespace=env.get("LLAMA_PLATFORM_TRAIN_NAMESPACE") or "training",
        train_nodes=_at_least(env, "LLAMA_PLATFORM_TRAIN_NODES", 1, minimum=1),
        train_gpus=_at_least(env, "LLAMA_PLATFORM_TRAIN_GPUS", 1, minimum=0),
        train_gpu_product=env.get("LLAMA_PLATFORM_TRAIN_GPU_PRODUCT") or None,
        train_cpu=env.get("LLAMA_PLATFORM_TRAIN_CPU") or "8",
        train_memory=env.get("LLAMA_PLATFORM_TRAIN_MEMORY") or "64Gi",
        kubeconfig=env.get("LLAMA_PLATFORM_KUBECONFIG") or None,
    )


def secret_from_env(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """Read one secret by name (for CLI paths that run outside Dagster resources)."""
    env = os.environ if env is None else env
    return env.get(name) or None
