"""Stage 1: raw issues, exactly as each forge sent them, one dynamic partition per repo."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    RunRequest,
    DynamicPartitionsDefinition,
    MetadataValue,
    Output,
    SensorEvaluationContext,
    SensorResult,
    asset,
    sensor,
)

from llama_platform.assets.common import column_schema, preview
from llama_platform.resources.forges import ForgeResource
from llama_platform.sources.records import raw_frame
from llama_platform.sources.repos import load_repos, parse_repo_key

repo_partitions = DynamicPartitionsDefinition(name="repos")


@asset(
    partitions_def=repo_partitions,
    group_name="ingestion",
    io_manager_key="parquet_io_manager",
    description="Issues and pull requests of one repo, lossless forge JSON with their comments.",
    kinds={"python", "parquet"},
)
def raw_issues(context: AssetExecutionContext, forges: ForgeResource) -> Output[pd.DataFrame]:
    source, repo = parse_repo_key(context.partition_key)
    client = forges.client(source)
    rows = []
    try:
        for i, row in enumerate(client.fetch_repo(repo), start=1):
            rows.append(row)
            if i % 500 == 0:
                context.log.info(f"{context.partition_key}: {i} issues fetched")
    finally:
        getattr(client, "close", lambda: None)()
    df = raw_frame(rows)
    n_pr = int(df["payload"].str.contains('"pull_request":', regex=False).sum()) if len(df) else 0
    context.log.info(f"{context.partition_key}: {len(df)} records ({n_pr} pull requests)")
    return Output(
        df,
        metadata={
            "row_count": MetadataValue.int(len(df)),
            "pull_requests": MetadataValue.int(n_pr),
            "source": source,
            "repo": repo,
            "updated_max": str(df["updated_at"].max()) if len(df) else "",
            "preview": preview(df, ["source", "repo", "number", "updated_at", "payload_sha256"]),
            "dagster/column_schema": column_schema(df),
        },
    )


def repo_registry_requests(current: list[str], wanted: list[str]) -> tuple[list[str], list[str]]:
    """Partition keys to add and to delete so the partitions match the repos list."""
    return sorted(set(wanted) - set(current)), sorted(set(current) - set(wanted))


def make_repo_registry_sensor(repos_file, repos_override):
    @sensor(
        name="repo_registry_sensor",
        asset_selection=AssetSelection.assets(raw_issues),
        minimum_interval_seconds=60,
        description="Keeps the `repos` partitions in line with the repos list (repos.yaml or LLAMA_PLATFORM_REPOS).",
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
        # A newly listed repo gets its first ingestion run straight away.
        return SensorResult(
            run_requests=[RunRequest(partition_key=k, run_key=f"register:{k}") for k in add],
            dynamic_partitions_requests=requests,
        )

    return repo_registry_sensor
