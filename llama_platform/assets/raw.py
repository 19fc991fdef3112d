"""Stage 1: raw issues, exactly as each forge sent them, partitioned by repo x update-time month.

A run covering many windows of a repo (a backfill; BackfillPolicy.single_run) makes one paginated
pass per repo from the first window's start, sorted by update time, and writes every window it
covers. Refreshing windows that are already stored asks the forge only for what changed since the
last refresh (`since` = the stored high-water mark).
"""

import hashlib
import json
from collections import defaultdict
from datetime import datetime, timezone
from urllib.parse import quote

import orjson
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    BackfillPolicy,
    DataVersion,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    MetadataValue,
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    Output,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    asset,
    sensor,
)

from llama_platform.assets.common import bar_plot, code_version_of, column_schema, png_markdown, preview
from llama_platform.resources.forges import ForgeResource
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform.sources.records import is_pull_request, raw_frame
from llama_platform.sources.repos import load_repos, parse_repo_key
from llama_platform.sources.windows import (
    IngestState,
    advance_state,
    assign_windows,
    keyless,
    merge_versions,
    plan_fetch,
    window_of,
)

repo_partitions = DynamicPartitionsDefinition(name="repos")
RAW_ASSET = AssetKey("raw_issues")
PREVIEW_COLUMNS = ["source", "repo", "number", "updated_at", "payload_sha256"]
RAW_COLUMN_DOCS = {
    "source": "forge: github or gitee",
    "repo": "OWNER/REPO on that forge",
    "number": "issue number as the forge shows it (Gitee: I1ABCD)",
    "updated_at": "last update time, UTC (the window is its month)",
    "payload": "the forge's JSON for the issue and its comments, unchanged",
    "payload_sha256": "sha256 of payload: the record's content identity",
}


def partition_content_hash(df: pd.DataFrame) -> str:
    """A window's content identity: the hash of its rows' payload hashes in stored order (rows are
    stored sorted by key), so an unchanged window hashes the same however often it is rewritten."""
    digest = hashlib.sha256()
    for h in df["payload_sha256"] if "payload_sha256" in df else df["payload"].map(
        lambda p: hashlib.sha256(p if isinstance(p, bytes) else str(p).encode()).hexdigest()
    ):
        digest.update(str(h).encode())
    return digest.hexdigest()[:16]


def partition_metadata(df: pd.DataFrame) -> dict:
    """What one raw partition holds, recorded on that partition's own materialization."""
    n_pr = sum(is_pull_request(orjson.loads(p)["issue"]) for p in df["payload"]) if len(df) else 0
    return {
        "row_count": MetadataValue.int(len(df)),
        "pull_requests": MetadataValue.int(int(n_pr)),
        "issues": MetadataValue.int(len(df) - int(n_pr)),
        "content_hash": partition_content_hash(df),
        "preview": preview(df, PREVIEW_COLUMNS),
    }


def raw_partitions_def(history_start: str) -> MultiPartitionsDefinition:
    # end_offset=1: the current (still filling) month is a partition too, so it can be refreshed.
    return MultiPartitionsDefinition(
        {"repo": repo_partitions, "window": MonthlyPartitionsDefinition(start_date=history_start, end_offset=1)}
    )


def _state_path(repo_key: str) -> str:
    return f"state/raw_issues/{quote(repo_key, safe='')}.json"


def _requested(context: AssetExecutionContext) -> dict[str, list[str]]:
    """The run's partitions grouped as {repo: [windows]} (one forge pass per repo)."""
    partitions_def = context.assets_def.partitions_def
    by_repo: dict[str, list[str]] = defaultdict(list)
    for key in context.partition_keys:
        dims = partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension
        by_repo[dims["repo"]].append(dims["window"])
    return {repo: sorted(ws) for repo, ws in by_repo.items()}


def build_raw_issues(history_start: str):
    partitions_def = raw_partitions_def(history_start)

    @asset(
        name="raw_issues",
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name="ingestion",
        io_manager_key="parquet_io_manager",
        description="Issues and pull requests with their comments, lossless forge JSON, keyed "
        "(source, repo, number, updated_at); partitioned by repo x month of updated_at.",
        kinds={"python", "parquet"},
        code_version=code_version_of("assets/raw.py", "sources"),
        tags={"stage": "ingest"},
        pool="forge-api",  # one forge pass at a time per pool slot: they share the API rate limit
    )
    def raw_issues(
        context: AssetExecutionContext, forges: ForgeResource, object_store: ObjectStoreResource
    ) -> Output[dict]:
        store = object_store.location()
        outputs: dict[str, pd.DataFrame] = {}
        stats = {}
        for repo_key, windows in _requested(context).items():
            source, repo = parse_repo_key(repo_key)
            state_rel = _state_path(repo_key)
            state = IngestState.from_json(store.read_bytes(state_rel).decode() if store.exists(state_rel) else None)
            plan = plan_fetch(windows, state)
            started = datetime.now(timezone.utc)
            context.log.info(
                f"{repo_key}: {len(windows)} window(s) {windows[0]}..{windows[-1]}, "
                f"{'incremental ' if plan.incremental else ''}fetch since {plan.since.isoformat()}"
            )
            client = forges.client(source)
            # Rate-limit waits are bounded by the connector and shown in the run log.
            on_wait = lambda s, why, k=repo_key: context.log.warning(f"{k}: waiting {s:.0f}s ({why})")  # noqa: E731
            # A retried run with the same plan resumes from the last completed page.
            checkpoint = forges.checkpoint_path(repo_key, plan.since)
            rows = []
            try:
                pages = client.fetch_repo(repo, since=plan.since, checkpoint=checkpoint, on_wait=on_wait)
                for i, row in enumerate(pages, start=1):
                    rows.append(row)
                    if i % 1000 == 0:
                        context.log.info(f"{repo_key}: {i} records fetched")
            finally:
                getattr(client, "close", lambda: None)()
            report = dict(getattr(client, "last_report", None) or {})
            fetched = raw_frame(rows)
            fetched["window"] = assign_windows(fetched, windows)
            beyond = int((fetched["window"] > windows[-1]).sum()) if len(fetched) else 0
            # An issue re-fetched for an edited comment keeps its old updated_at: a window this run
            # does not write. Counted, so a refresh of the current window says what it could not store.
            before = int((fetched["window"] < windows[0]).sum()) if len(fetched) else 0
            if before:
                context.log.warning(f"{repo_key}: {before} re-fetched record(s) belong to windows before "
                                    f"{windows[0]}; materialise those windows to store them")
            for window in windows:
                key = MultiPartitionKey({"repo": repo_key, "window": window})
                new = fetched[fetched["window"] == window].drop(columns=["window"])
                # Always merge: older versions of an issue stay stored (lossless raw), even after a
                # full re-fetch that only returns each issue's latest version.
                existing = _existing(context, key)
                outputs[key] = merge_versions(existing, new)
            store.write_bytes(state_rel, advance_state(state, plan, started).to_json().encode())
            shortfall = report.get("comment_shortfall") or {}
            stats[repo_key] = {"fetched": len(fetched), "beyond_requested_windows": beyond,
                               "before_requested_windows": before,
                               "keyless_records": int(keyless(fetched).sum()) if len(fetched) else 0,
                               "incremental": plan.incremental, "since": plan.since.isoformat(),
                               # What the forge's data lacked (stale comment counts, comments naming no
                               # issue): recorded, never silently dropped. At most 50 issues listed.
                               "comment_shortfall_issues": len(shortfall),
                               "comment_shortfall": dict(sorted(shortfall.items())[:50]),
                               "orphan_comments": report.get("orphan_comments", 0),
                               "orphan_issues_fetched": report.get("orphan_issues_fetched", 0),
                               "refetched_issues": report.get("refetched_issues", 0)}
        # Each partition carries its own counts, hash and preview (a single-run backfill writes many).
        hashes = {}
        for key, df in outputs.items():
            meta = partition_metadata(df)
            hashes[str(key)] = meta["content_hash"]
            context.add_asset_metadata(meta, partition_key=key)
        total = sum(len(df) for df in outputs.values())
        per_window = {str(k).split("|")[-1] if len(stats) == 1 else str(k): len(v) for k, v in outputs.items()}
        sample = next((df for df in outputs.values() if len(df)), pd.DataFrame(columns=PREVIEW_COLUMNS))
        # One data version per run (Dagster takes one per output): the hash of the written windows'
        # hashes, so rewriting unchanged windows keeps the version and automation has nothing to do.
        version = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]
        return Output(
            outputs,
            data_version=DataVersion(version),
            metadata={
                "run_row_count": MetadataValue.int(total),
                "partitions_written": MetadataValue.int(len(outputs)),
                "fetch": MetadataValue.json(stats),
                "rows_per_window": png_markdown(bar_plot(per_window, "records per window (this run)"), "records per window")
                if len(per_window) > 1 else MetadataValue.json(per_window),
                "dagster/column_schema": column_schema(sample, RAW_COLUMN_DOCS),
            },
        )

    return raw_issues


def _existing(context: AssetExecutionContext, key: MultiPartitionKey) -> pd.DataFrame | None:
    """The stored rows of one window, read through the IO manager's storage (None if never written)."""
    from llama_platform.resources.io_manager import read_partition

    return read_partition(context, RAW_ASSET, str(key))


def repo_registry_requests(current: list[str], wanted: list[str]) -> tuple[list[str], list[str]]:
    """Partition keys to add and to delete so the partitions match the repos list."""
    return sorted(set(wanted) - set(current)), sorted(set(current) - set(wanted))


def make_repo_registry_sensor(repos_file, repos_override, raw_asset):
    @sensor(
        name="repo_registry_sensor",
        asset_selection=AssetSelection.assets(raw_asset),
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Keeps the `repos` partitions in line with the repos list (repos.yaml or "
        "LLAMA_PLATFORM_REPOS); a new repo gets a single-run backfill of its whole history.",
    )
    def repo_registry_sensor(context: SensorEvaluationContext) -> SensorResult:
        wanted = load_repos(repos_file, repos_override)
        current = list(context.instance.get_dynamic_partitions(repo_partitions.name))
        add, delete = repo_registry_requests(current, wanted)
        requests = []
        if add:
            requests.append(repo_partitions.build_add_request(add))
        if delete:
            requests.append(repo_partitions.build_delete_request(delete))
        context.log.info(f"repos: {len(wanted)} wanted, adding {add}, removing {delete}")
        return SensorResult(
            run_requests=[_history_run_request(raw_asset, k) for k in add],
            dynamic_partitions_requests=requests,
        )

    return repo_registry_sensor


def _history_run_request(raw_asset, repo_key: str) -> RunRequest:
    """One run over every window of a new repo (partition range repo|first .. repo|last)."""
    windows = raw_asset.partitions_def.get_partitions_def_for_dimension("window").get_partition_keys()
    start = MultiPartitionKey({"repo": repo_key, "window": windows[0]})
    end = MultiPartitionKey({"repo": repo_key, "window": windows[-1]})
    return RunRequest(
        run_key=f"register:{repo_key}",
        asset_selection=[RAW_ASSET],
        tags={"dagster/asset_partition_range_start": str(start), "dagster/asset_partition_range_end": str(end)},
    )


def _already_stored(store, repo_key: str, newest: datetime | None) -> bool:
    """True when the forge's newest change is older than the last fetch of this repo (its high-water mark)."""
    rel = _state_path(repo_key)
    if newest is None or not store.exists(rel):
        return False
    state = IngestState.from_json(store.read_bytes(rel).decode())
    # Forge timestamps have whole seconds: a change stamped in the second the fetch began may have
    # missed it, so only one strictly before that second counts as stored.
    return bool(state.high_water) and newest < datetime.fromisoformat(state.high_water).replace(microsecond=0)


def make_freshness_sensor(raw_asset):
    @sensor(
        name="forge_freshness_sensor",
        asset_selection=AssetSelection.assets(raw_asset),
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description="Polls each repo cheaply (GitHub: conditional request, 304 when nothing changed; "
        "Gitee: one `since` request) and refreshes the current window of repos that changed.",
    )
    def forge_freshness_sensor(
        context: SensorEvaluationContext, forges: ForgeResource, object_store: ObjectStoreResource
    ) -> SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        store = object_store.location()
        now_window = window_of(datetime.now(timezone.utc))
        requests = []
        for repo_key in context.instance.get_dynamic_partitions(repo_partitions.name):
            source, repo = parse_repo_key(repo_key)
            client = forges.client(source)
            try:
                result = client.poll(repo, cursor.get(repo_key))
            except Exception as exc:  # one unreachable forge must not stall the others
                context.log.warning(f"{repo_key}: poll failed: {type(exc).__name__}: {exc}")
                continue
            finally:
                getattr(client, "close", lambda: None)()
            first_poll = repo_key not in cursor
            cursor[repo_key] = result.etag
            # The first poll only takes a baseline: registration already fetched the history.
            if result.changed and not first_poll and _already_stored(store, repo_key, result.newest_updated_at):
                # e.g. `llama-platform run` fetched it after the previous poll: a refresh would return nothing new.
                context.log.info(f"{repo_key}: changed since the last poll, but already stored by the last fetch")
            elif result.changed and not first_poll:
                key = MultiPartitionKey({"repo": repo_key, "window": now_window})
                requests.append(RunRequest(partition_key=str(key), run_key=f"fresh:{repo_key}:{result.etag}"))
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return forge_freshness_sensor
