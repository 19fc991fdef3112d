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

# Tags on every run `llama-platform run` launches: the UI shows who started it, and an interrupted
# pipeline finds its own in-flight runs to mark canceled.
LAUNCHED_BY_TAG = "llama_platform/launched_by"


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
    if settings.mlflow_tracking_uri.startswith("sqlite:"):
        port = int(os.environ.get("LLAMA_PLATFORM_MLFLOW_UI_PORT", "5000"))
        # Links in metadata are built from this URL even when the UI is not started now (`--once`):
        # they open once `make ui` serves it.
        os.environ.setdefault("LLAMA_PLATFORM_MLFLOW_UI_URL", f"http://127.0.0.1:{port}")
    if with_mlflow_ui and settings.mlflow_tracking_uri.startswith("sqlite:"):
        ui = start_service(
            "mlflow-ui",
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.mlflow_tracking_uri,
             "--default-artifact-root", settings.mlflow_artifact_location,
             "--host", "127.0.0.1", "--port", str(port)],
            logs / "mlflow_ui.log",
        )
        ui.url = f"http://127.0.0.1:{port}"
        procs.append(ui)
        wait_http_ok(f"{ui.url}/health", ui, timeout=120)  # its printed URL must open
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


def run_pipeline(settings: Settings, instance=None, log=print) -> dict:
    """Materialise every asset on the instance, with progress: one single-run backfill per repo over
    all its windows, then one named Dagster run per downstream stage (each visible in the UI).

    A stage whose inputs and code are unchanged since it was built is skipped, and says so: the
    forge is always asked (cheaply, for what changed), but rewriting identical raw windows changes
    no data version, so nothing downstream is rebuilt and no new model version is registered.
    Interrupted (Ctrl-C), the runs it had in flight are marked canceled."""
    from dagster import AssetKey, DagsterInstance, MultiPartitionKey, execute_job, reconstructable
    from tqdm import tqdm

    from llama_platform import definitions
    from llama_platform.assets.cleaning import CLEAN_CODE_VERSION
    from llama_platform.assets.raw import repo_partitions
    from llama_platform.assets.versioning import clean_is_current, cleaned_data_version, raw_fingerprint, stale_reason
    from llama_platform.sources.repos import load_repos

    instance = instance or DagsterInstance.get()
    defs = definitions.build_definitions(settings)
    graph = defs.resolve_asset_graph()
    repos = load_repos(settings.repos_file, settings.repos_override)
    instance.add_dynamic_partitions(repo_partitions.name, repos)
    ingest = defs.resolve_job_def("ingest_job")
    windows = ingest.partitions_def.get_partitions_def_for_dimension("window").get_partition_keys()
    tags = {LAUNCHED_BY_TAG: f"llama-platform run (pid {os.getpid()})"}
    started = time.monotonic()
    built, skipped = [], {}
    try:
        with tqdm(total=len(repos) + len(definitions.STAGE_JOBS), desc="pipeline", unit="step") as bar:
            for repo in repos:
                bar.set_postfix_str(f"raw_issues[{repo}]")
                first = MultiPartitionKey({"repo": repo, "window": windows[0]})
                last = MultiPartitionKey({"repo": repo, "window": windows[-1]})
                result = ingest.execute_in_process(
                    instance=instance,
                    tags={**tags, "dagster/asset_partition_range_start": str(first),
                          "dagster/asset_partition_range_end": str(last)},
                )
                if not result.success:
                    raise RuntimeError(f"ingesting {repo} failed: see the run {result.run_id} in the UI / logs")
                bar.update()
            for name, keys, _ in definitions.STAGE_JOBS:
                bar.set_postfix_str(name)
                if name == "cleaning":
                    # EnvVar-backed S3 keys resolve here, as they would in a run.
                    io_manager = defs.resources["parquet_io_manager"].process_config_and_initialize()
                    raw_keys = ingest.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
                    expected = cleaned_data_version(CLEAN_CODE_VERSION, raw_fingerprint(io_manager, raw_keys))
                    why = clean_is_current(instance, expected)
                else:
                    why = stale_reason(instance, graph, keys)
                if why is None:
                    skipped[name] = "up to date: inputs and code unchanged since it was built"
                    bar.update()
                    continue
                tqdm.write(f"{name}: building ({why})")
                notebook_jobs = {"report": definitions.dataset_report_job_def,
                                 "error_analysis": definitions.error_analysis_job_def}
                if name in notebook_jobs:
                    # dagstermill executes the notebook through a reconstructable job, not in-process assets.
                    with execute_job(
                        reconstructable(notebook_jobs[name]),
                        instance=instance,
                        run_config={"execution": {"config": {"in_process": {}}}},
                        tags=tags,
                    ) as report:
                        if not report.success:
                            raise RuntimeError(f"the {name} notebook failed: see its run in the UI")
                else:
                    result = defs.resolve_job_def(name).execute_in_process(
                        instance=instance, tags=tags, raise_on_error=False
                    )
                    _stop_on_failed_blocking_checks(result)
                    if not result.success:
                        raise RuntimeError(f"stage {name} failed: see the run {result.run_id} in the UI / logs")
                built.append(name)
                bar.update()
    except BaseException:
        cancel_inflight_runs(instance, tags[LAUNCHED_BY_TAG])
        raise
    if skipped:
        log(f"Up to date, not rebuilt: {', '.join(skipped)} (inputs and code unchanged since they were built).")
    endpoint = instance.get_latest_materialization_event(AssetKey("deployed_endpoint"))
    meta = endpoint.asset_materialization.metadata
    return {
        "seconds": time.monotonic() - started,
        "endpoint_url": meta["endpoint_url"].value,
        "page_url": meta["page_url"].value if "page_url" in meta else None,
        "model_uri": str(getattr(meta.get("model_uri"), "value", meta.get("model_uri"))),
        "repos": repos,
        "built": built,
        "skipped": skipped,
    }


def cancel_inflight_runs(instance, launched_by: str | None) -> list[str]:
    """Mark the runs that are still queued/starting/started as canceled: this invocation's
    (`launched_by`), or all of them (None: after the webserver/daemon and their run workers were
    stopped). An interrupted run would otherwise stay STARTED in the instance forever."""
    from dagster import DagsterRunStatus, RunsFilter

    live = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    tags = {LAUNCHED_BY_TAG: launched_by} if launched_by else None
    runs = instance.get_runs(filters=RunsFilter(statuses=live, tags=tags))
    for run in runs:
        instance.report_run_canceled(run, message="llama-platform run was interrupted")
    return [r.run_id for r in runs]


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
        print(f"\nPipeline finished in {summary['seconds']:.0f}s over {len(summary['repos'])} repos"
              f" (built: {', '.join(summary['built']) or 'nothing, all up to date'}).")
        if args.once:
            return 0
        ensure_endpoint(settings)
        # Started after the pipeline: its daemon runs the sensors and automation, which would
        # otherwise race the runs above.
        ui = start_dagster_ui(settings, args.ui_port)
        procs.append(ui)
        print_urls(settings, ui.url)
        _wait_for_interrupt()
        return 0
    finally:
        _shutdown(settings, procs)


def ensure_endpoint(settings: Settings, instance=None) -> str | None:
    """Serve the model deployed_endpoint last deployed, unless the endpoint already answers; then
    record what the endpoint_answers check sees. Returns the model URI served (None: none yet)."""
    from dagster import AssetKey, DagsterInstance

    from llama_platform.assets.health import probe
    from llama_platform.definitions import build_resources

    instance = instance or DagsterInstance.get()
    endpoint = build_resources(settings)["endpoint"].process_config_and_initialize()
    event = instance.get_latest_materialization_event(AssetKey("deployed_endpoint"))
    model_uri = None
    if event is not None:
        value = event.asset_materialization.metadata.get("model_uri")
        model_uri = str(getattr(value, "value", value))
    if not probe(endpoint.url, endpoint.model_name)[0]:
        if model_uri is None:
            print("No model deployed yet: `make run` trains and deploys one.")
        else:
            print(f"Starting the endpoint for {model_uri} ...", flush=True)
            endpoint.deploy(model_uri)
    record_endpoint_health(settings, instance)
    return model_uri


def record_endpoint_health(settings: Settings, instance=None) -> bool:
    """Run the endpoint_answers check now, so the UI shows whether the endpoint answers."""
    from dagster import DagsterInstance

    from llama_platform.definitions import build_definitions

    result = build_definitions(settings).resolve_job_def("endpoint_health").execute_in_process(
        instance=instance or DagsterInstance.get(), raise_on_error=False
    )
    return all(e.passed for e in result.get_asset_check_evaluations())


def print_urls(settings: Settings, dagster_url: str) -> None:
    key_file = settings.home / "api_key"
    key_hint = f"$(cat {key_file})" if key_file.exists() else f"${SERVING_API_KEY_ENV}"
    endpoint = f"http://{settings.serve_host}:{settings.serve_port}"
    predict = f"{endpoint}/v1/models/llama4-triage:predict"
    print(f"Dagster UI:  {dagster_url}/asset-groups (lineage), {dagster_url}/runs (runs)")
    mlflow_ui = os.environ.get("LLAMA_PLATFORM_MLFLOW_UI_URL") or settings.mlflow_ui_url
    if mlflow_ui:
        # workflowType: MLflow 3's UI otherwise opens experiments on its GenAI (traces) overview.
        print(f"MLflow UI:   {mlflow_ui}/#/experiments?workflowType=machine_learning (runs), "
              f"{mlflow_ui}/#/models (registered models)")
    print(f"Endpoint:    {predict}  (health: {endpoint}/v2/health/ready)")
    print(f"Maintainers' page: {endpoint}/ui  (paste the API key there)")
    print(f"  curl -H \"Authorization: Bearer {key_hint}\" {predict} "
          "-d '{\"instances\": [{\"title\": \"Crash on start\", \"body\": \"Traceback ...\", \"repo\": \"weavekit/weave\"}]}'")
    print("Press Ctrl-C to stop everything.", flush=True)


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
    if stop_endpoint(settings.home / "serving"):
        try:  # the UI must not show a stopped endpoint as healthy
            record_endpoint_health(settings)
        except Exception as exc:  # never block shutdown on the record
            print(f"(could not record the endpoint's health: {type(exc).__name__}: {exc})")
    for proc in reversed(procs):
        proc.stop()
    if any(p.name == "dagster-ui" for p in procs):  # its daemon's runs died with it
        from dagster import DagsterInstance

        with DagsterInstance.get() as instance:
            cancel_inflight_runs(instance, None)


def cmd_ui(args: argparse.Namespace) -> int:
    """Everything up over the existing state: the endpoint (the last deployed model), MLflow UI,
    Dagster UI (webserver + daemon), with their URLs."""
    _restore_interrupts()
    settings = load_settings()
    prepare_home(settings)
    procs = start_local_services(settings, with_mlflow_ui=True)
    settings = load_settings()
    try:
        ensure_endpoint(settings)
        ui = start_dagster_ui(settings, args.ui_port)
        procs.append(ui)
        print_urls(settings, ui.url)
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
    ui = sub.add_parser("ui", help="bring everything up over the existing state: endpoint, MLflow UI, Dagster UI")
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
