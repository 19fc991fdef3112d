"""raw_issues over repo x month partitions, against the replay forge over real HTTP: range backfills
write exactly the windows asked for in one pass per repo; refreshes cost what changed; the
freshness sensor polls cheaply and asks only for windows that changed."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from urllib.parse import quote

import pandas as pd
import pytest
from dagster import MultiPartitionKey, build_sensor_context

from llama_platform.definitions import build_definitions
from llama_platform.settings import load_settings
from llama_platform.replay.corpus import load_corpus
from llama_platform.replay.generator import write_corpus
from llama_platform.replay.forge import ReplayForgeServer
from llama_platform.sources.windows import window_of

REPO = "github:tensorflux/tensorflux"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(out, scale=0.1)
    return out


@pytest.fixture()
def forge(corpus):
    with ReplayForgeServer(corpus) as server:
        yield server


@pytest.fixture()
def platform(tmp_path, forge, corpus):
    settings = load_settings({
        "LLAMA_PLATFORM_HOME": str(tmp_path / "home"),
        "LLAMA_PLATFORM_REPLAY_URL": forge.url,
        "LLAMA_PLATFORM_CORPUS_DIR": str(corpus),
        "LLAMA_PLATFORM_REPOS": REPO,
        "LLAMA_PLATFORM_HISTORY_START": "2024-06-01",
    })
    defs = build_definitions(settings)
    return settings, defs


def _tags(repo: str, first: str, last: str) -> dict:
    return {
        "dagster/asset_partition_range_start": str(MultiPartitionKey({"repo": repo, "window": first})),
        "dagster/asset_partition_range_end": str(MultiPartitionKey({"repo": repo, "window": last})),
    }


def _stored_windows(settings, repo: str) -> dict[str, pd.DataFrame]:
    folder = settings.home / "store" / "assets" / "raw_issues"
    prefix = quote(f"{repo}|", safe="")
    return {
        p.name[len(prefix):-len(".parquet")].replace("%3A", ":"): pd.read_parquet(p)
        for p in folder.glob(f"{prefix}*.parquet")
    }


def _corpus_items(corpus, repo: str) -> tuple[list[dict], list[dict]]:
    source, name = repo.split(":", 1)
    data = next(d for d in load_corpus(corpus) if d["source"] == source and d["repo"] == name)
    return data["issues"], data["comments"]


def _ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value).tz_convert("UTC")


def test_range_backfill_writes_exactly_the_windows_asked_for_in_one_pass(platform, forge, corpus, instance):
    settings, defs = platform
    instance.add_dynamic_partitions("repos", [REPO])
    forge.reset()
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance, tags=_tags(REPO, "2025-01-01", "2025-03-01")
    )
    assert result.success
    stored = _stored_windows(settings, REPO)
    assert sorted(stored) == ["2025-01-01", "2025-02-01", "2025-03-01"]
    issues, comments = _corpus_items(corpus, REPO)
    for window, df in stored.items():
        assert set(df["updated_at"].map(window_of)) <= {window}
        want = {str(i["number"]) for i in issues if window_of(_ts(i["updated_at"])) == window}
        assert set(df["number"]) == want and len(df) == len(want)
    # One paginated pass per kind from the range start: no per-window, no per-issue requests.
    since = pd.Timestamp("2025-01-01", tz="UTC")
    n_issues = sum(_ts(i["updated_at"]) >= since for i in issues)
    n_comments = sum(_ts(c["updated_at"]) >= since for c in comments)
    floor = max(1, math.ceil(n_issues / 100)) + max(1, math.ceil(n_comments / 100))
    assert forge.stats()["total"] <= floor + 1


def test_each_partition_of_a_single_run_backfill_carries_its_own_counts_and_preview(platform, forge, corpus, instance):
    settings, defs = platform
    instance.add_dynamic_partitions("repos", [REPO])
    ingest = defs.resolve_job_def("ingest_job")
    windows = ingest.partitions_def.get_partitions_def_for_dimension("window").get_partition_keys()
    result = ingest.execute_in_process(instance=instance, tags=_tags(REPO, windows[0], windows[-1]))
    assert result.success
    stored = _stored_windows(settings, REPO)
    events = {str(m.partition): m.metadata for m in result.asset_materializations_for_node("raw_issues")}
    assert len(events) == len(windows)
    for window, df in stored.items():
        meta = events[str(MultiPartitionKey({"repo": REPO, "window": window}))]
        assert meta["row_count"].value == len(df)
        n_pr = sum('"pull_request"' in str(p) and '"html_url": null' not in str(p) for p in df["payload"])
        assert meta["pull_requests"].value + meta["issues"].value == len(df) and meta["pull_requests"].value <= n_pr
        if len(df):  # the preview shows this window's own rows
            assert str(df["number"].iloc[0]) in meta["preview"].value
    # the UI's per-partition counts add up to what is stored, and to the forge's issue count
    assert sum(m["row_count"].value for m in events.values()) == sum(len(df) for df in stored.values())
    issues, _ = _corpus_items(corpus, REPO)
    since = pd.Timestamp(windows[0], tz="UTC")
    assert sum(m["row_count"].value for m in events.values()) == sum(_ts(i["updated_at"]) >= since for i in issues)
    # an unchanged re-run rewrites the same content: same per-partition hashes and data version
    again = ingest.execute_in_process(instance=instance, tags=_tags(REPO, windows[0], windows[-1]))
    second = {str(m.partition): m.metadata for m in again.asset_materializations_for_node("raw_issues")}
    assert {k: m["content_hash"].value for k, m in second.items()} == {k: m["content_hash"].value for k, m in events.items()}
    versions = {m.tags["dagster/data_version"] for r in (result, again) for m in r.asset_materializations_for_node("raw_issues")}
    assert len(versions) == 1


def test_refresh_costs_what_changed_and_rerunning_is_idempotent(platform, forge, corpus, instance):
    settings, defs = platform
    instance.add_dynamic_partitions("repos", [REPO])
    ingest = defs.resolve_job_def("ingest_job")
    windows = ingest.partitions_def.get_partitions_def_for_dimension("window").get_partition_keys()
    assert ingest.execute_in_process(instance=instance, tags=_tags(REPO, windows[0], windows[-1])).success
    before = _stored_windows(settings, REPO)
    issues, _ = _corpus_items(corpus, REPO)
    target = next(i for i in issues if "pull_request" not in i)
    forge.reset()
    forge.mutate("github", "tensorflux/tensorflux", "update_issue", number=target["number"], fields={"title": "Renamed"})
    now_window = window_of(datetime.now(timezone.utc))
    key = str(MultiPartitionKey({"repo": REPO, "window": now_window}))
    assert ingest.execute_in_process(instance=instance, partition_key=key).success
    assert forge.stats()["total"] <= 4  # one page per pass (+ the boundary issue's comments), not the history
    after = _stored_windows(settings, REPO)
    current = after[now_window]
    assert (current["number"] == str(target["number"])).sum() == 1
    # The old version stays stored in its own window (raw is lossless; latest wins downstream).
    old_window = window_of(_ts(target["updated_at"]))
    assert (after[old_window]["number"] == str(target["number"])).sum() == 1
    assert ingest.execute_in_process(instance=instance, partition_key=key).success
    assert _stored_windows(settings, REPO)[now_window].equals(current)
    assert sum(len(df) for df in after.values()) == sum(len(df) for df in before.values()) + 1


def test_freshness_sensor_polls_cheaply_and_requests_only_changed_repos(platform, forge, instance):
    settings, defs = platform
    instance.add_dynamic_partitions("repos", [REPO])
    sensor = defs.resolve_sensor_def("forge_freshness_sensor")
    resources = {"forges": defs.resources["forges"], "object_store": defs.resources["object_store"]}

    def tick(cursor):
        with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            return sensor(ctx)

    forge.reset()
    first = tick(None)
    assert first.run_requests == []  # the first poll only takes a baseline
    unchanged = tick(first.cursor)
    assert unchanged.run_requests == []
    stats = forge.stats()
    # one request per repo per poll, answered 304 (free of rate limit) when nothing changed
    assert stats["total"] == 2 and stats["by_status"].get("304") == 1
    forge.mutate("github", "tensorflux/tensorflux", "add_issue", fields={"title": "Crash when saving"})
    changed = tick(unchanged.cursor)
    now_window = window_of(datetime.now(timezone.utc))
    assert [r.partition_key for r in changed.run_requests] == [str(MultiPartitionKey({"repo": REPO, "window": now_window}))]
    # The cursor survives restarts: it is plain JSON handed back by Dagster on the next tick.
    assert tick(changed.cursor).run_requests == []


def test_freshness_sensor_skips_a_change_the_last_fetch_already_stored(platform, forge, instance):
    """A change fetched by a run after the previous poll (`llama-platform run`) triggers no refresh:
    it would return nothing new."""
    settings, defs = platform
    instance.add_dynamic_partitions("repos", [REPO])
    sensor = defs.resolve_sensor_def("forge_freshness_sensor")
    resources = {"forges": defs.resources["forges"], "object_store": defs.resources["object_store"]}

    def tick(cursor):
        with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            return sensor(ctx)

    ingest = defs.resolve_job_def("ingest_job")
    windows = ingest.partitions_def.get_partitions_def_for_dimension("window").get_partition_keys()
    assert ingest.execute_in_process(instance=instance, tags=_tags(REPO, windows[0], windows[-1])).success
    baseline = tick(None)
    forge.mutate("github", "tensorflux/tensorflux", "add_issue", fields={"title": "Crash when saving"})
    time.sleep(1.1)  # forge timestamps have whole seconds: the fetch must begin in a later one
    now_key = str(MultiPartitionKey({"repo": REPO, "window": window_of(datetime.now(timezone.utc))}))
    assert ingest.execute_in_process(instance=instance, partition_key=now_key).success  # the pipeline's fetch
    after = tick(baseline.cursor)
    assert after.run_requests == []
    # a change after that fetch is still refreshed
    forge.mutate("github", "tensorflux/tensorflux", "add_issue", fields={"title": "Hangs on exit"})
    assert [r.partition_key for r in tick(after.cursor).run_requests] == [now_key]


def test_wire_format_repo_stores_every_record_and_records_what_the_forge_lacked(tmp_path, instance):
    """Older API shapes through raw_issues: numberless items are stored one each, the legacy null
    `pull_request` is not counted as a PR, and a stale comment count is in the run's metadata."""
    from llama_platform_tests.support import wire_fixtures as W

    key = f"github:{W.REPO}"
    with ReplayForgeServer(W.write_wire_corpus(tmp_path / "wire")) as server:
        settings = load_settings({
            "LLAMA_PLATFORM_HOME": str(tmp_path / "home"),
            "LLAMA_PLATFORM_REPLAY_URL": server.url,
            "LLAMA_PLATFORM_CORPUS_DIR": str(tmp_path / "wire"),
            "LLAMA_PLATFORM_REPOS": key,
            "LLAMA_PLATFORM_HISTORY_START": "2025-03-01",
        })
        defs = build_definitions(settings)
        instance.add_dynamic_partitions("repos", [key])
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=_tags(key, "2025-03-01", "2025-03-01"))
    assert result.success
    stored = _stored_windows(settings, key)["2025-03-01"]
    # every item the forge serves for a `since` query (the one with updated_at null matches no `since`)
    assert len(stored) == 8 and (stored["number"] == "").sum() == 2
    metadata = result.asset_materializations_for_node("raw_issues")[0].metadata
    assert metadata["pull_requests"].value == 1
    fetch = metadata["fetch"].data[key]
    assert fetch["comment_shortfall"] == {str(W.SHORT_COUNT): {"expected": 3, "attached": 1}}
    assert fetch["keyless_records"] == 2 and fetch["orphan_comments"] == 0
