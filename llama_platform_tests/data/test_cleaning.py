import json

import pandas as pd
import pytest

from llama_platform.data.cleaning import COMMENT_SEPARATOR, CleaningConfig, clean_issues
from llama_platform.data.redaction import find_secrets, pseudonymise
from llama_platform.data.schemas import CleanedIssuesSchema, FilteredIssuesSchema, QuarantinedIssuesSchema
from llama_platform.sources.records import canonical_json, payload_hash, raw_row
from llama_platform_tests.data.factories import LOREM, frame, gh_comment, gh_issue, gh_row, gitee_issue

GH_TOKEN = "gh" + "p_" + "Zz9" * 12
DUP_BODY = (
    "Uploading a file larger than two gigabytes fails with a timeout after exactly sixty seconds, "
    "although the documented limit is five gigabytes. Smaller files upload fine with the same client."
)


def _broken(source: str, repo: str, number: str, payload: str, updated=None) -> dict:
    return {
        "source": source,
        "repo": repo,
        "number": number,
        "updated_at": updated,
        "payload": payload,
        "payload_sha256": payload_hash(payload),
    }


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    rows = [
        # 1: good issue, with PII, bot noise and a quoted e-mail reply in its comments
        gh_row(
            number=1,
            body=f"Crash at start.\n<!-- template -->\nMy token {GH_TOKEN}, mail me at dev@example.com\n\n" + LOREM,
            labels=("type: bug", "priority: high"),
            comments=[
                gh_comment("dependabot[bot]", "Bumps foo from 1.0 to 1.1", "2024-01-01T11:00:00Z", "Bot"),
                gh_comment("bob", "@dependabot rebase", "2024-01-01T11:30:00Z"),
                gh_comment("bob", "Same here @alice, on 10.0.0.8.\n\n> quoted\nSigned-off-by: Bob <b@x.org>", "2024-01-01T12:00:00Z"),
                gh_comment("carol", "> only a quote\n", "2024-01-01T12:30:00Z"),
            ],
        ),
        # 2: an older version of #1 (superseded)
        gh_row(number=1, updated="2024-01-01T10:30:00Z", labels=("bug",)),
        # 3: a pull request
        gh_row(number=2, pull_request=True),
        # 4: opened by a bot
        gh_row(number=3, login="renovate[bot]", user_type="Bot", labels=("enhancement",)),
        # 5: no canonical label
        gh_row(number=4, labels=("wontfix",)),
        # 6: too short after cleaning (the body is only a template comment)
        gh_row(number=5, title="Hi", body="<!-- describe your problem here -->", labels=("question",)),
        # 7 + 8: near-duplicates across repos; #7 in acme/server is older so it survives
        gh_row(number=7, title="Large uploads time out", body=DUP_BODY, labels=("bug",), created="2024-01-01T00:00:00Z"),
        gh_row(
            repo="fork/server", number=9, title="Large uploads time out", body=DUP_BODY + " Thanks!",
            labels=("bug",), created="2024-02-01T00:00:00Z",
        ),  # fmt: skip
        # 9: Gitee issue with a Chinese label
        raw_row("gitee", "mirror/server", gitee_issue("I1ABCD", body="启动时报错，缓存目录不存在。" + LOREM), []),
        # 10-12: malformed payloads
        _broken("github", "acme/server", "20", "{not json"),
        raw_row("github", "acme/server", {**gh_issue(21), "title": 42}, []),
        raw_row("github", "acme/server", gh_issue(22, created="yesterday"), []),
        # 13: unknown forge
        raw_row("gitlab", "acme/server", gh_issue(23), []),
        # 14: body over the size limit
        gh_row(number=24, body="x" * 70_000),
        # 15: unpaired surrogate escaped in the JSON
        _broken(
            "github", "acme/server", "25",
            canonical_json({"issue": gh_issue(25), "comments": []}).replace("Server exits", "Server \\ud800exits"),
        ),  # fmt: skip
        # 16: payload number differs from the row's key
        {**gh_row(number=26), "number": "27"},
    ]
    return frame(rows)


@pytest.fixture(scope="module")
def result(mixed):
    return clean_issues(mixed)


def test_reconciliation_invariant(mixed, result):
    assert len(mixed) == len(result.cleaned) + len(result.quarantined) + len(result.filtered)
    c = result.counts
    assert c["raw"] == len(mixed) == c["cleaned"] + sum(c["quarantined"].values()) + sum(c["filtered"].values())
    assert c["cleaned"] == len(result.cleaned)


def test_every_row_lands_where_expected(result):
    assert set(result.cleaned["issue_id"]) == {
        "github:acme/server#1",
        "github:acme/server#7",
        "gitee:mirror/server#I1ABCD",
    }
    filtered = dict(zip(result.filtered["issue_id"] + "|" + result.filtered["reason"], [1] * len(result.filtered)))
    assert set(filtered) == {
        "github:acme/server#1|superseded",
        "github:acme/server#2|pull_request",
        "github:acme/server#3|bot_author",
        "github:acme/server#4|no_label",
        "github:acme/server#5|too_short",
        "github:fork/server#9|near_duplicate",
    }
    q = result.quarantined.set_index("issue_id")
    assert q.loc["github:acme/server#20", "reason"] == "malformed:invalid_json"
    assert q.loc["github:acme/server#21", "reason"] == "malformed:bad_field"
    assert q.loc["github:acme/server#22", "reason"] == "malformed:bad_timestamp"
    assert q.loc["gitlab:acme/server#23", "reason"] == "malformed:unknown_source"
    assert q.loc["github:acme/server#24", "reason"] == "too_large"
    assert q.loc["github:acme/server#25", "reason"] == "invalid_utf8"
    assert q.loc["github:acme/server#27", "reason"] == "malformed:key_mismatch"
    assert (q["detail"].str.len() > 0).all()
    assert result.counts["quarantined"]["too_large"] == 1
    assert result.counts["filtered"]["superseded"] == 1


def test_outputs_match_their_schemas(result):
    CleanedIssuesSchema.validate(result.cleaned)
    QuarantinedIssuesSchema.validate(result.quarantined)
    FilteredIssuesSchema.validate(result.filtered)
    assert str(result.cleaned["created_at"].dtype) == "datetime64[ns, UTC]"


def test_latest_version_wins_and_text_is_cleaned(result):
    row = result.cleaned.set_index("issue_id").loc["github:acme/server#1"]
    assert row["labels"] == ["bug"] and row["label"] == "bug"
    assert "template" not in row["body"] and "Crash at start." in row["body"]
    assert GH_TOKEN not in row["body"] and "<SECRET:GitHubToken>" in row["body"]
    assert "dev@example.com" not in row["body"] and "<EMAIL>" in row["body"]
    # Bot comment, bot invocation and the quote-only comment are gone; one human comment is left.
    assert row["n_comments"] == 1
    assert COMMENT_SEPARATOR not in row["comments_text"]
    assert row["comments_text"] == f"Same here {pseudonymise('alice')}, on <IP_ADDRESS>."
    assert row["author"] == pseudonymise("alice")
    assert row["redactions"] == 3
    assert row["dup_cluster"] == "github:acme/server#1"
    assert result.counts["comments"] == {"bot": 1, "bot_invocation": 1, "kept": 1, "empty_after_cleaning": 1}


def test_near_duplicate_survivor_is_the_earliest(result):
    row = result.cleaned.set_index("issue_id").loc["github:acme/server#7"]
    assert row["dup_cluster"] == "github:acme/server#7"  # the smallest id of {acme#7, fork#9}


def test_gitee_issue_is_normalised(result):
    row = result.cleaned.set_index("issue_id").loc["gitee:mirror/server#I1ABCD"]
    assert row["label"] == "bug" and row["state"] == "open"
    assert row["created_at"] == pd.Timestamp("2024-01-01T10:00:00Z")


def test_no_secret_survives_cleaning(result):
    for col in ("title", "body", "comments_text"):
        for text in result.cleaned[col]:
            assert find_secrets(text) == [], text


def test_missing_columns_are_a_clear_error():
    with pytest.raises(ValueError, match="lacks columns"):
        clean_issues(pd.DataFrame({"source": ["github"]}))


def test_empty_input_gives_empty_valid_outputs():
    res = clean_issues(frame([]))
    assert len(res.cleaned) == len(res.quarantined) == len(res.filtered) == 0
    assert res.counts == {
        "raw": 0, "cleaned": 0, "quarantined": {}, "filtered": {}, "comments": {}, "redactions": {}, "languages": {}
    }  # fmt: skip
    CleanedIssuesSchema.validate(res.cleaned)


def test_config_limits_apply():
    long_comment = "word " * 2000
    raw = frame([gh_row(number=1, comments=[gh_comment("bob", long_comment)])])
    res = clean_issues(raw, CleaningConfig(max_comment_chars=500, min_chars=10, salt="s"))
    row = res.cleaned.iloc[0]
    assert len(row["comments_text"]) <= 500 and "characters truncated" in row["comments_text"]
    assert row["author"] == pseudonymise("alice", salt="s")
    strict = clean_issues(raw, CleaningConfig(min_chars=10_000))
    assert strict.counts["filtered"] == {"too_short": 1}


def test_same_timestamp_versions_prefer_the_one_with_more_comments():
    older = gh_row(number=1)
    newer = gh_row(number=1, comments=[gh_comment("bob", "I can reproduce this on Linux as well.")])
    res = clean_issues(frame([newer, older]))
    assert res.cleaned.iloc[0]["n_comments"] == 1
    assert res.counts["filtered"] == {"superseded": 1}
    assert json.loads(older["payload"])["issue"]["number"] == 1


def _thread(number: int, comments: list[dict]) -> dict:
    topics = ["the exporter", "the importer", "the scheduler", "the web console", "the CLI"]
    body = f"Since version {number}.2 {topics[number]} hangs whenever the disk is full; restarting it does not help at all."
    return gh_row(number=number, title=f"{topics[number]} hangs", body=body, comments=comments)


def test_conversation_shape_filters():
    bot_log = [gh_comment("github-actions[bot]", f"CI run {i} failed", user_type="Bot") for i in range(5)]
    flood = [gh_comment("bob", f"any update on this? ping number {i}") for i in range(31)]
    busy = [gh_comment(f"user{i % 10}", f"I see this too on setup {i}") for i in range(40)]  # many people: fine
    few_bots = [gh_comment("codecov[bot]", "coverage 90%", user_type="Bot"), gh_comment("bob", "Same on macOS for me.")]
    raw = frame([_thread(1, bot_log), _thread(2, flood), _thread(3, busy), _thread(4, few_bots)])
    res = clean_issues(raw)
    reasons = dict(zip(res.filtered["issue_id"], res.filtered["reason"]))
    assert reasons == {"github:acme/server#1": "bot_dominated", "github:acme/server#2": "comment_flood"}
    assert set(res.cleaned["number"]) == {"3", "4"}
    assert res.cleaned.set_index("number").loc["4", "n_comments"] == 1
    limit = clean_issues(raw, CleaningConfig(max_comments=39))
    assert dict(zip(limit.filtered["issue_id"], limit.filtered["reason"]))["github:acme/server#3"] == "comment_flood"


def test_language_column(result):
    langs = result.cleaned.set_index("issue_id")["lang"]
    assert langs["github:acme/server#1"] == "en"
    assert langs["gitee:mirror/server#I1ABCD"] in ("zh", "en")  # Chinese opening, English lorem after
    assert result.counts["languages"] == dict(langs.value_counts())


def test_chunked_and_parallel_oracle_matches_the_streaming_path(mixed, result):
    """`result` is `clean_issues` (the streaming path); the in-memory oracle, chunked and in a pool, agrees."""
    from llama_platform_tests.data.oracle import clean_chunks

    # Chunks of 3 split the two versions of #1 and the near-duplicate pair across chunks.
    shuffled = mixed.sample(frac=1.0, random_state=3).reset_index(drop=True)
    chunks = [shuffled.iloc[i : i + 3] for i in range(0, len(shuffled), 3)]
    for res in (clean_chunks(chunks), clean_chunks(chunks, workers=2)):
        pd.testing.assert_frame_equal(res.cleaned, result.cleaned)
        key = ["issue_id", "reason"]
        assert sorted(map(tuple, res.filtered[key].values)) == sorted(map(tuple, result.filtered[key].values))
        assert sorted(map(tuple, res.quarantined[key].values)) == sorted(map(tuple, result.quarantined[key].values))
        assert res.counts == result.counts


def test_markdown_and_truncation_in_cleaned_text():
    body = "Crash report\n============\n* step one\n<details><summary>log</summary>\n\n```\nE  boom\n```\n</details>\n" + LOREM
    res = clean_issues(frame([gh_row(number=1, body=body, comments=[gh_comment("bob", "x" * 50 + " @alice " + "y" * 9000)])]))
    row = res.cleaned.iloc[0]
    assert row["body"].startswith("# Crash report\n- step one\nlog\n\n```\nE  boom\n```")
    assert "<details>" not in row["body"]
    comment = row["comments_text"]
    assert len(comment) <= CleaningConfig().max_comment_chars and "characters truncated" in comment
    assert pseudonymise("alice") in comment and comment.endswith("y" * 100)  # head and tail kept
