from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from llama_platform.features.sources import (
    FeatureInputError,
    build_feature_tables,
    label_feature_name,
)
from llama_platform.features.store import (
    FeatureRepoConfig,
    feature_refs,
    historical_features,
    materialize,
    online_features,
    write_feature_store,
)


def _ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def _issue(n: int, repo: str, created: str, label: str, author: str | None, closed: str | None = None, body: str = "text", redactions: int = 0) -> dict:
    return {
        "issue_id": f"github:{repo}#{n}", "source": "github", "repo": repo, "number": str(n),
        "title": "t" * n, "body": body, "comments_text": "", "n_comments": n,
        "labels": [label], "label": label, "state": "closed" if closed else "open",
        "author": author, "author_association": "NONE",
        "created_at": _ts(created), "updated_at": _ts(created),
        "closed_at": _ts(closed) if closed else pd.NaT,
        "dup_cluster": n, "redactions": redactions, "raw_hash": f"h{n}", "split": "train",
    }


def _snapshot() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _issue(1, "a/b", "2024-01-01T10:00Z", "bug", "u1", closed="2024-01-02T08:00Z", redactions=2),
            _issue(2, "a/b", "2024-01-03T09:00Z", "feature", "u1", body="see\n```py\nx = 1\n```"),
            _issue(3, "a/b", "2024-01-03T18:00Z", "bug", "u2"),
            _issue(4, "a/b", "2024-01-05T10:00Z", "docs", "u1"),
            _issue(5, "c/d", "2024-01-04T10:00Z", "question", None),
        ]
    )


def _repo_row_at(tables: dict, repo: str, t: pd.Timestamp) -> pd.Series:
    """What an as-of join returns: the latest repo_stats row with event_timestamp <= t."""
    rs = tables["repo_stats"]
    rows = rs[(rs["repo"] == repo) & (rs["event_timestamp"] <= t)]
    return rows.sort_values("event_timestamp").iloc[-1]


def test_repo_features_at_t_exclude_issues_created_at_or_after_t():
    snap = _snapshot()
    t = _ts("2024-01-03T20:00Z")  # issues 2 and 3 were created earlier on this same day
    row = _repo_row_at(build_feature_tables(snap), "a/b", t)
    # Only issue 1 (2024-01-01) was created before 2024-01-03 00:00: same-day issues are excluded.
    assert row["repo_issues_before"] == 1
    assert row["repo_closed_before"] == 1  # issue 1 closed on 01-02
    assert row[label_feature_name("bug")] == pytest.approx(1.0)
    assert row[label_feature_name("feature")] == 0.0

    # Adding issues after t (with a new label mix) must not change any value visible at t.
    future = pd.DataFrame(
        [_issue(9, "a/b", "2024-01-04T00:00Z", "feature", "u9"), _issue(10, "a/b", "2024-02-01T00:00Z", "feature", "u1")]
    )
    with_future = build_feature_tables(pd.concat([snap, future], ignore_index=True), labels=["bug", "docs", "feature", "question"])
    row_future = _repo_row_at(with_future, "a/b", t)
    pd.testing.assert_series_equal(row.drop("event_timestamp"), row_future.drop("event_timestamp"), check_names=False)


def test_author_prior_issues_count_only_earlier_days():
    tables = build_feature_tables(_snapshot())
    a = tables["author_stats"].set_index(["author", "event_timestamp"])["author_prior_issues"]
    assert a[("u1", _ts("2024-01-01"))] == 0
    assert a[("u1", _ts("2024-01-03"))] == 1  # issue 2 is that day's own issue
    assert a[("u1", _ts("2024-01-06"))] == 3
    # An issue without an author gets issue/repo rows but no author row.
    assert set(tables["author_stats"]["author"]) == {"u1", "u2"}
    assert "github:c/d#5" in set(tables["issue_stats"]["issue_id"])


def test_issue_stats_values():
    issue = build_feature_tables(_snapshot())["issue_stats"].set_index("issue_id")
    assert issue.loc["github:a/b#2", "has_code_block"]
    assert not issue.loc["github:a/b#1", "has_code_block"]
    assert issue.loc["github:a/b#1", "n_redactions"] == 2
    assert issue.loc["github:a/b#1", "is_closed"]
    assert issue.loc["github:a/b#4", "title_len"] == 4
    assert issue.loc["github:a/b#4", "event_timestamp"] == _ts("2024-01-05T10:00Z")


def test_bad_snapshots_are_refused_with_a_reason():
    snap = _snapshot()
    with pytest.raises(FeatureInputError, match="missing columns.*created_at"):
        build_feature_tables(snap.drop(columns=["created_at"]))
    with pytest.raises(FeatureInputError, match="duplicate issue_ids"):
        build_feature_tables(pd.concat([snap, snap.iloc[:1]], ignore_index=True))
    no_time = snap.copy()
    no_time.loc[0, "created_at"] = pd.NaT
    with pytest.raises(FeatureInputError, match="without created_at"):
        build_feature_tables(no_time)
    bad_redactions = snap.copy()
    bad_redactions["redactions"] = bad_redactions["redactions"].astype(object)
    bad_redactions.loc[1, "redactions"] = "many"
    with pytest.raises(FeatureInputError, match="redactions"):
        build_feature_tables(bad_redactions)
    with pytest.raises(FeatureInputError, match="no rows"):
        build_feature_tables(snap.iloc[:0])


def test_label_feature_names_are_distinct_and_safe():
    assert label_feature_name("Good First Issue") == "repo_label_share__good_first_issue"
    assert label_feature_name("缺陷") != label_feature_name("需求")
    assert label_feature_name("缺陷").replace("repo_label_share__", "").isidentifier()


@pytest.fixture(scope="module")
def feature_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("feast")
    cfg = FeatureRepoConfig(repo_dir=root / "repo", data_dir=root / "data")
    tables = build_feature_tables(_snapshot())
    store = write_feature_store(cfg, tables)
    return cfg, store, tables


def test_apply_writes_repo_and_registers_views(feature_store):
    cfg, store, _ = feature_store
    assert cfg.yaml_path.exists()
    assert "entity_key_serialization_version: 3" in cfg.yaml_path.read_text()
    assert {fv.name for fv in store.list_feature_views()} == {"issue_stats", "repo_stats", "author_stats"}
    assert "repo_stats:" + label_feature_name("question") in feature_refs(store)


def test_materialize_then_online_returns_latest_written_values(feature_store):
    _, store, tables = feature_store
    materialize(store, datetime(2023, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc))
    got = online_features(store, ["github:a/b#2", "github:c/d#5", "github:x/y#1"], ["a/b", "c/d", "x/y"], ["u1", None, "nobody"])
    issue = tables["issue_stats"].set_index("issue_id")
    assert got["body_len"][:2] == [issue.loc["github:a/b#2", "body_len"], issue.loc["github:c/d#5", "body_len"]]
    assert got["has_code_block"][0] is True
    # Latest repo row for a/b is 2024-01-06: all four a/b issues are before it.
    assert got["repo_issues_before"] == [4, 1, None]
    assert got[label_feature_name("bug")][0] == pytest.approx(0.5)
    assert got["author_prior_issues"] == [3, None, None]
    assert got["title_len"][2] is None  # an issue the store has never seen


def test_historical_join_is_point_in_time_and_keeps_entity_rows(feature_store):
    _, store, _ = feature_store
    entity_df = pd.DataFrame(
        {
            "issue_id": ["github:a/b#4", "github:a/b#3", "github:a/b#3", "github:c/d#5", "github:a/b#1"],
            "repo": ["a/b", "a/b", "a/b", "c/d", "a/b"],
            "author": ["u1", "u2", "u2", None, "u1"],
            "event_timestamp": [_ts("2024-01-05T10:00Z"), _ts("2024-01-03T18:00Z"), _ts("2024-01-03T18:00Z"), _ts("2024-01-04T10:00Z"), _ts("2023-12-01T00:00Z")],
            "split": ["train", "train", "val", "test", "train"],
        }
    )
    out = historical_features(store, entity_df)
    assert len(out) == len(entity_df)
    assert out["split"].tolist() == entity_df["split"].tolist()  # the caller's columns ride along
    assert out["issue_id"].tolist() == entity_df["issue_id"].tolist()  # caller's order kept
    assert out["repo_issues_before"].tolist()[:4] == [3, 1, 1, 0]
    assert out["author_prior_issues"].tolist()[0] == 2
    # Before any data existed there is nothing to join: nulls, not values from the future.
    assert pd.isna(out["repo_issues_before"].iloc[4]) and pd.isna(out["title_len"].iloc[4])


def test_historical_refuses_entity_columns_that_clash_with_features(feature_store):
    _, store, _ = feature_store
    entity_df = pd.DataFrame({"issue_id": ["github:a/b#1"], "repo": ["a/b"], "author": ["u1"],
                              "event_timestamp": [_ts("2024-01-02T00:00Z")], "n_comments": [3]})
    with pytest.raises(ValueError, match="n_comments"):
        historical_features(store, entity_df)


def test_endpoint_lookup_gives_the_repo_features_prompts_were_trained_with(feature_store):
    from llama_platform.features.online import RepoFeatureLookup, prompt_feature_columns

    cfg, store, _ = feature_store
    materialize(store, datetime(2023, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc))
    lookup = RepoFeatureLookup(cfg)
    known, unknown = lookup(["a/b", "nobody/none"])
    assert known["repo_issues_before"] == 4
    assert known[label_feature_name("bug")] == pytest.approx(0.5)
    assert set(known) == set(prompt_feature_columns(list(known)))  # repo-level only: nothing that leaks
    assert unknown == {}
    assert prompt_feature_columns(["n_comments", "is_closed", "repo_issues_before"]) == ["repo_issues_before"]
