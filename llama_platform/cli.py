"""`llama-platform`: run the whole pipeline locally, start the UI, record a real repo, serve the replay forge."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

from llama_platform.settings import SERVING_API_KEY_ENV, Settings, load_settings
from llama_platform.snapshot_cli import add_snapshot_commands

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGED_INSTANCE_YAML = Path(__file__).resolve().parent / "dagster.yaml"

# (title, asset keys) in graph order; raw_issues runs once per repo partition before these.
STAGES = [
    ("clean", ["cleaned_issues", "quarantined_issues"]),
    ("snapshot", ["issue_snapshot"]),
    ("data-quality report", ["dataset_report"]),
    ("features", ["issue_features"]),
    ("training set", ["training_set"]),
    ("fine-tune", ["finetuned_checkpoint"]),
    ("H2O baseline", ["baseline_model"]),
    ("evaluate", ["model_evaluation"]),
    ("error analysis", ["error_analysis"]),
    ("deploy", ["deployed_endpoint"]),
]


def prepare_home(settings: Settings) -> None:
    """Create the local state folder, the Dagster instance config and the endpoint API key."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    shutil.copyfile(src if src.exists() else PACKAGED_INSTANCE_YAML, settings.dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    if not os.environ.get(SERVING_API_KEY_ENV):
        key_file = settings.home / "api_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(32))
            key_file.chmod(0o600)
        os.environ[SERVING_API_KEY_ENV] = key_file.read_text().strip()


def start_local_services(settings: Settings, with_mlflow_ui: bool) -> list:
    """The replay forge (unless a forge URL is configured) and, optionally, an MLflow UI."""
    from llama_platform.services import free_port, start_service, wait_http_ok

    procs = []
    logs = settings.home / "logs"
    if settings.profile == "local" and not settings.replay_url:
        port = free_port()
        forge = start_service(
            "replay-forge",
            [sys.executable, "-m", "llama_platform.replay.forge", "--corpus", str(settings.corpus_dir),
             "--host", "127.0.0.1", "--port", str(port)],
            logs / "replay_forge.log",
        )
        procs.append(forge)
        forge.url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{forge.url}/_replay/stats", forge, timeout=60)
        os.environ["LLAMA_PLATFORM_REPLAY_URL"] = forge.url
    if with_mlflow_ui and settings.mlflow_tracking_uri.startswith("sqlite:"):
        port = int(os.environ.get("LLAMA_PLATFORM_MLFLOW_UI_PORT", "5000"))
        ui = start_service(
            "mlflow-ui",
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.mlflow_tracking_uri,
             "--default-artifact-root", settings.mlflow_artifact_location,
             "--host", "127.0.0.1", "--port", str(port)],
            logs / "mlflow_ui.log",
        )
        ui.url = f"http://127.0.0.1:{port}"
        procs.append(ui)
        os.environ["LLAMA_PLATFORM_MLFLOW_UI_URL"] = ui.url
    return procs


def start_dagster_ui(settings: Settings, port: int):
    from llama_platform.services import start_service, wait_http_ok

    ui = start_service(
        "dagster-ui",
        [str(Path(sys.executable).parent / "dagster"), "dev", "-m", "llama_platform.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        settings.home / "logs" / "dagster_ui.log",
        env={"DAGSTER_HOME": str(settings.dagster_home)},
    )
    ui.url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{ui.url}/server_info", ui, timeout=120)
    return ui


def run_pipeline(settings: Settings, instance=None) -> dict:
    """Materialise every asset on the instance, with progress: one single-run backfill per repo over
    all its windows, then one Dagster run per downstream stage (each visible in the UI)."""
    from dagster import AssetKey, DagsterInstance, MultiPartitionKey, execute_job, materialize, reconstructable
    from tqdm import tqdm

    from llama_platform import definitions
    from llama_platform.assets.raw import repo_partitions
    from llama_platform.sources.repos import load_repos

    instance = instance or DagsterInstance.get()
    defs = definitions.build_definitions(settings)
    resources = definitions.build_resources(settings)
    assets = [*defs.assets, *definitions.ASSET_CHECKS]
    repos = load_repos(settings.repos_file, settings.repos_override)
    instance.add_dynamic_partitions(repo_partitions.name, repos)
    ingest = defs.resolve_job_def("ingest_job")
    windows = ingest.partitions_def.get_partitions_def_for_dimension("window").get_partition_keys()
    started = time.monotonic()
    with tqdm(total=len(repos) + len(STAGES), desc="pipeline", unit="step") as bar:
        for repo in repos:
            bar.set_postfix_str(f"raw_issues[{repo}]")
            first = MultiPartitionKey({"repo": repo, "window": windows[0]})
            last = MultiPartitionKey({"repo": repo, "window": windows[-1]})
            result = ingest.execute_in_process(
                instance=instance,
                tags={"dagster/asset_partition_range_start": str(first), "dagster/asset_partition_range_end": str(last)},
            )
            if not result.success:
                raise RuntimeError(f"ingesting {repo} failed: see the run {result.run_id} in the UI / logs")
            bar.update()
        for title, keys in STAGES:
            bar.set_postfix_str(title)
            notebook_jobs = {"dataset_report": definitions.dataset_report_job_def,
                             "error_analysis": definitions.error_analysis_job_def}
            if len(keys) == 1 and keys[0] in notebook_jobs:
                # dagstermill executes the notebook through a reconstructable job, not in-process assets.
                with execute_job(
                    reconstructable(notebook_jobs[keys[0]]),
                    instance=instance,
                    run_config={"execution": {"config": {"in_process": {}}}},
                ) as report:
                    if not report.success:
                        raise RuntimeError(f"the {keys[0]} notebook failed: see its run in the UI")
            else:
                result = materialize(assets, selection=keys, instance=instance, resources=resources)
                _stop_on_failed_blocking_checks(result)
            bar.update()
    endpoint = instance.get_latest_materialization_event(AssetKey("deployed_endpoint"))
    meta = endpoint.asset_materialization.metadata
    return {
        "seconds": time.monotonic() - started,
        "endpoint_url": meta["endpoint_url"].value,
        "page_url": meta["page_url"].value if "page_url" in meta else None,
        "repos": repos,
    }


class BlockingCheckFailed(RuntimeError):
    pass


def _stop_on_failed_blocking_checks(result) -> None:
    """Stages run as separate Dagster runs, so a failed blocking check must stop the next stage here."""
    failed = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        # A blocking check that fails with WARN severity does not block (Dagster's rule too).
        if not e.passed and e.blocking and e.severity.value == "ERROR"
    ]
    if failed:
        raise BlockingCheckFailed(f"blocking asset checks failed, stopping the pipeline: {failed}")


def cmd_run(args: argparse.Namespace) -> int:
    _restore_interrupts()
    settings = load_settings()
    prepare_home(settings)
    procs = start_local_services(settings, with_mlflow_ui=not args.once)
    settings = load_settings()  # picks up the replay forge / MLflow UI URLs just started
    try:
        summary = run_pipeline(settings)
        key_hint = f"$(cat {settings.home / 'api_key'})" if (settings.home / "api_key").exists() else f"${SERVING_API_KEY_ENV}"
        print(f"\nPipeline finished in {summary['seconds']:.0f}s over {len(summary['repos'])} repos.")
        print(f"Endpoint: {summary['endpoint_url']}")
        if summary.get("page_url"):
            print(f"Maintainers' page: {summary['page_url']} (paste the API key there)")
        print(f"  curl -H \"Authorization: Bearer {key_hint}\" {summary['endpoint_url']} "
              "-d '{\"instances\": [{\"title\": \"Crash on start\", \"body\": \"Traceback ...\", \"repo\": \"weavekit/weave\"}]}'")
        if args.once:
            return 0
        # Started after the pipeline: its daemon runs the sensors and automation, which would
        # otherwise race the runs above.
        ui = start_dagster_ui(settings, args.ui_port)
        procs.append(ui)
        print(f"Dagster UI: {ui.url}/asset-groups (lineage), {ui.url}/runs (runs)")
        if os.environ.get("LLAMA_PLATFORM_MLFLOW_UI_URL"):
            print(f"MLflow UI: {os.environ['LLAMA_PLATFORM_MLFLOW_UI_URL']}")
        print("Press Ctrl-C to stop everything.", flush=True)
        _wait_for_interrupt()
        return 0
    finally:
        _shutdown(settings, procs)


def _restore_interrupts() -> None:
    # A shell's background job (or make) can start us with SIGINT ignored; Ctrl-C must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _wait_for_interrupt() -> None:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def _shutdown(settings: Settings, procs: list) -> None:
    from llama_platform.resources.serving import stop_endpoint

    print("\nStopping services...", flush=True)
    stop_endpoint(settings.home / "serving")
    for proc in reversed(procs):
        proc.stop()


def cmd_ui(args: argparse.Namespace) -> int:
    _restore_interrupts()
    settings = load_settings()
    prepare_home(settings)
    procs = start_local_services(settings, with_mlflow_ui=True)
    settings = load_settings()
    try:
        ui = start_dagster_ui(settings, args.ui_port)
        procs.append(ui)
        print(f"Dagster UI: {ui.url}  (Ctrl-C to stop)", flush=True)
        _wait_for_interrupt()
        return 0
    finally:
        _shutdown(settings, procs)


def cmd_record(args: argparse.Namespace) -> int:
    from llama_platform.replay.recorder import record_repo
    from llama_platform.sources.gitee import GiteeForge
    from llama_platform.sources.github import GitHubForge
    from llama_platform.settings import GITEE_TOKEN_ENV, GITHUB_TOKEN_ENV, secret_from_env

    settings = load_settings()
    if args.source == "github":
        forge = GitHubForge(settings.github_api_url, secret_from_env(GITHUB_TOKEN_ENV))
    else:
        forge = GiteeForge(settings.gitee_api_url, secret_from_env(GITEE_TOKEN_ENV))
    path = record_repo(forge, args.source, args.repo, Path(args.out))
    print(f"recorded {args.source}:{args.repo} -> {path}")
    return 0


def cmd_forge(args: argparse.Namespace) -> int:
    from llama_platform.replay.forge import main as forge_main

    settings = load_settings()
    return forge_main(["--corpus", str(args.corpus or settings.corpus_dir), "--host", "127.0.0.1", "--port", str(args.port)]) or 0


def _snapshot_store():
    from llama_platform.data.store import open_store
    from llama_platform.settings import S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV, secret_from_env

    s = load_settings()
    return open_store(s.store_url, s.s3_endpoint_url, secret_from_env(S3_ACCESS_KEY_ENV),
                      secret_from_env(S3_SECRET_KEY_ENV), s.s3_region)


def cmd_models_import(args: argparse.Namespace) -> int:
    import json

    from llama_platform.settings import S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV, secret_from_env
    from llama_platform.training.registry import import_model

    s = load_settings()
    store = args.store or s.store_url
    client = None
    if store.startswith("s3://"):
        import boto3

        client = boto3.client("s3", endpoint_url=s.s3_endpoint_url, region_name=s.s3_region,
                              aws_access_key_id=secret_from_env(S3_ACCESS_KEY_ENV),
                              aws_secret_access_key=secret_from_env(S3_SECRET_KEY_ENV))
    print(json.dumps(import_model(args.path, store, name=args.name, client=client), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llama-platform", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline on the local profile, then keep the UI and endpoint up")
    run.add_argument("--once", action="store_true", help="exit after the pipeline (for scripts)")
    run.add_argument("--ui-port", type=int, default=3000)
    run.set_defaults(func=cmd_run)
    ui = sub.add_parser("ui", help="start the Dagster webserver + daemon (and the replay forge) on 127.0.0.1")
    ui.add_argument("--ui-port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    rec = sub.add_parser("record", help="record a real repo's issues into the replay corpus format")
    rec.add_argument("repo", help="OWNER/REPO")
    rec.add_argument("--source", choices=["github", "gitee"], default="github")
    rec.add_argument("--out", default="recorded_corpus")
    rec.set_defaults(func=cmd_record)
    add_snapshot_commands(sub, _snapshot_store)
    models = sub.add_parser("models", help="base models in the object store").add_subparsers(dest="models", required=True)
    imp = models.add_parser("import", help="upload a Hugging Face model folder under its content hash")
    imp.add_argument("path", help="local folder: config.json, safetensors (+ index), tokenizer")
    imp.add_argument("--name", default=None, help="model name (default: the folder name)")
    imp.add_argument("--store", default=None, help="store URL (default: LLAMA_PLATFORM_STORE_URL)")
    imp.set_defaults(func=cmd_models_import)
    forge = sub.add_parser("forge", help="serve the replay forge in the foreground")
    forge.add_argument("--corpus", default=None)
    forge.add_argument("--port", type=int, default=8765)
    forge.set_defaults(func=cmd_forge)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
