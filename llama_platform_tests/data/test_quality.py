"""The validator's pure check functions, with passing and failing cases each."""

from __future__ import annotations

import pandas as pd
import pytest

from llama_platform.data.cleaning import clean_issues
from llama_platform.data.quality import (
    label_drift,
    manifest_label_counts,
    no_cluster_straddles_splits,
    no_secret_survives,
    reconcile,
    secret_findings,
    snapshot_schema,
    straddling_clusters,
    total_variation,
)
from llama_platform.data.splits import assign_splits
from llama_platform_tests.data.factories import frame, gh_comment, gh_row

GITHUB_TOKEN = "ghp_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"
AWS_KEY = "AKIA" + "ZXCVBNMASDFGHJKL"


@pytest.fixture(scope="module")
def result():
    rows = [
        gh_row(number=i, title=f"Importer crash number {i}", body=f"Case {i}: the importer fails " * (i + 2),
               labels=("bug",) if i % 2 else ("question",), comments=[gh_comment("bob", f"same here, case {i}")])
        for i in range(1, 9)
    ]  # fmt: skip
    rows.append(gh_row(number=50, title="Bump", body="Automated dependency update " * 3, pull_request=True))
    rows.append(gh_row(number=51, login="dependabot[bot]", user_type="Bot"))
    rows.append(gh_row(number=52, body="short", title="x"))
    rows.append(gh_row(number=3, updated="2023-12-30T00:00:00Z"))  # an older version of #3
    broken = gh_row(number=53)
    broken["payload"] = "{not json"
    rows.append(broken)
    return clean_issues(frame(rows)), len(rows)


@pytest.fixture()
def snapshot(result) -> pd.DataFrame:
    cleaned = result[0].cleaned
    return cleaned.assign(split=assign_splits(cleaned["dup_cluster"]))


# reconciliation ------------------------------------------------------------------------------------


def test_reconcile_passes_on_real_cleaning_output(result):
    res, n_raw = result
    out = reconcile(n_raw, len(res.cleaned), res.quarantined["reason"], res.filtered["reason"], res.counts)
    assert out.passed, out.description
    m = out.metadata
    assert m["raw"] == n_raw == m["cleaned"] + m["quarantined"] + m["filtered"] and m["unaccounted"] == 0
    for reason in ("pull_request", "bot_author", "too_short", "superseded"):
        assert m["filtered_by_reason"][reason] == 1, reason
    assert sum(m["quarantined_by_reason"].values()) == 1


def test_reconcile_fails_on_a_lost_row(result):
    res, n_raw = result
    out = reconcile(n_raw + 1, len(res.cleaned), res.quarantined["reason"], res.filtered["reason"], res.counts)
    assert not out.passed and out.metadata["unaccounted"] == 1
    assert f"raw {n_raw + 1} !=" in out.description


def test_reconcile_fails_when_a_reported_reason_count_is_off(result):
    res, n_raw = result
    reported = {"quarantined": res.counts["quarantined"], "filtered": {**res.counts["filtered"], "pull_request": 2}}
    out = reconcile(n_raw, len(res.cleaned), res.quarantined["reason"], res.filtered["reason"], reported)
    assert not out.passed and out.metadata["problems"] == ["filtered:pull_request reported 2, rows 1"]


def test_reconcile_fails_on_an_unreported_reason():
    out = reconcile(3, 1, ["too_large"], ["near_duplicate"], {"quarantined": {"too_large": 1}, "filtered": {}})
    assert not out.passed and out.metadata["problems"] == ["filtered:near_duplicate reported 0, rows 1"]


# no secret survives --------------------------------------------------------------------------------


def test_clean_output_has_no_findings(result):
    out = no_secret_survives(result[0].cleaned)
    assert out.passed and out.metadata["issues_with_findings"] == 0
    assert out.metadata["rows_scanned"] == len(result[0].cleaned)


def test_placeholders_and_harmless_text_are_not_findings():
    df = pd.DataFrame(
        {
            "issue_id": ["a"],
            "title": ["Token <SECRET:GitHubToken> leaked by <USER_abc123>"],
            "body": ["mail <EMAIL> from <IP_ADDRESS>; server listens on 127.0.0.1:8080, commit 3f2a9c1d"],
            "comments_text": [""],
        }
    )
    assert secret_findings(df) == {}


def test_surviving_secrets_and_pii_are_found_by_column(result):
    df = result[0].cleaned.copy()
    df.loc[0, "comments_text"] += f"\nexport AWS_ACCESS_KEY_ID={AWS_KEY}"
    df.loc[1, "title"] = "contact me at jane.doe@example.com"
    df.loc[1, "body"] += f"\ntoken: {GITHUB_TOKEN}"
    found = secret_findings(df)
    assert found == {
        df.loc[0, "issue_id"]: ["comments_text:SECRET:AWSAccessKey"],
        df.loc[1, "issue_id"]: ["title:EMAIL", "body:SECRET:GitHubToken"],
    }
    out = no_secret_survives(df)
    assert not out.passed and out.metadata["issues_with_findings"] == 2
    assert out.metadata["findings_by_type"] == {"EMAIL": 1, "SECRET:AWSAccessKey": 1, "SECRET:GitHubToken": 1}
    # What the check publishes names issues and kinds, never the values.
    published = str(out.metadata) + out.description
    assert GITHUB_TOKEN not in published and AWS_KEY not in published and "jane.doe" not in published


# leakage between splits ----------------------------------------------------------------------------


def test_straddling_clusters():
    df = pd.DataFrame({"dup_cluster": ["c1", "c1", "c2", "c2", "c3"], "split": ["train", "test", "val", "val", "train"]})
    assert straddling_clusters(df) == ["c1"]
    out = no_cluster_straddles_splits(df)
    assert not out.passed and out.metadata == {"straddling_clusters": 1, "sample": ["c1"]}
    assert no_cluster_straddles_splits(df[df["dup_cluster"] != "c1"]).passed
    assert straddling_clusters(df.iloc[:0]) == []


def test_assigned_splits_never_straddle(snapshot):
    assert no_cluster_straddles_splits(snapshot).passed


# snapshot schema -----------------------------------------------------------------------------------


def test_snapshot_schema_passes_a_valid_snapshot(snapshot):
    out = snapshot_schema(snapshot)
    assert out.passed and out.metadata == {"rows": len(snapshot), "failures": {}}


def test_snapshot_schema_reports_each_violation(snapshot):
    bad = snapshot.copy()
    bad.loc[0, "split"] = "holdout"
    bad.loc[1, "label"] = "not-a-label"
    bad.loc[2, "n_comments"] = -1
    out = snapshot_schema(bad)
    assert not out.passed
    failures = out.metadata["failures"]
    assert any(k.startswith("split:isin") for k in failures)
    assert any(k.startswith("label:isin") for k in failures)
    assert any(k.startswith("n_comments:greater_than_or_equal_to") for k in failures)
    assert "holdout" not in str(out.metadata)  # counts per check, not the offending values


def test_snapshot_schema_names_missing_and_extra_columns(snapshot):
    out = snapshot_schema(snapshot.drop(columns=["split"]).assign(secret_sauce=1))
    assert not out.passed
    assert out.metadata["failures"] == {"split:column_in_dataframe": 1, "secret_sauce:column_in_schema": 1}


# label drift ---------------------------------------------------------------------------------------


def test_total_variation():
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert total_variation({"a": 0.7, "b": 0.3}, {"a": 0.5, "b": 0.3, "c": 0.2}) == pytest.approx(0.2)


def test_label_drift_without_previous_snapshot_passes():
    out = label_drift({"bug": 3}, None)
    assert out.passed and out.description == "no previous snapshot"


def test_label_drift_below_and_above_threshold():
    previous = {"bug": 50, "feature": 30, "question": 20}
    small = label_drift({"bug": 52, "feature": 29, "question": 19}, previous, threshold=0.1, previous_version="v1")
    assert small.passed and small.metadata["total_variation"] == pytest.approx(0.02)
    large = label_drift({"bug": 20, "feature": 30, "question": 50}, previous, threshold=0.1, previous_version="v1")
    assert not large.passed and large.metadata["total_variation"] == pytest.approx(0.3)
    assert large.metadata["previous_version"] == "v1"
    assert "bug 50%->20%" in large.description and "question 20%->50%" in large.description
    # The same shift passes under a laxer threshold.
    assert label_drift({"bug": 20, "feature": 30, "question": 50}, previous, threshold=0.3).passed


def test_label_drift_rejects_a_nonsense_threshold():
    with pytest.raises(ValueError, match="threshold"):
        label_drift({"bug": 1}, {"bug": 1}, threshold=1.5)


def test_manifest_label_counts():
    manifest = {"label_counts": {"train": {"bug": 5, "docs": 1}, "val": {"bug": 1}, "test": {}}}
    assert manifest_label_counts(manifest) == {"bug": 6, "docs": 1}
    assert manifest_label_counts({"row_counts": {"train": 3}}) is None


# the independent verifier --------------------------------------------------------------------------


def _random_key(n: int = 40) -> str:
    import random
    import string

    rng = random.Random(9)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def test_verifier_blocks_on_planted_secrets_and_names_the_rule_never_the_value(result):
    from llama_platform.data.verify import verify

    key, password = _random_key(), "Hunter2" + "Pa55word"
    df = result[0].cleaned.copy()
    df.loc[0, "body"] += f"\nfound this in the logs: {key}"  # no rule knows it: the entropy sampler does
    df.loc[1, "comments_text"] += f'\ndb_password = "{password}"'  # detect-secrets' keyword rule
    df.loc[2, "title"] = "call me on +86 138 1234 5678"
    found = secret_findings(df)
    assert found == {
        df.loc[0, "issue_id"]: ["body:SECRET:HighEntropyString"],
        df.loc[1, "issue_id"]: ["comments_text:SECRET:SecretKeyword"],
        df.loc[2, "issue_id"]: ["title:PHONE"],
    }
    out = no_secret_survives(df)
    assert not out.passed and out.metadata["issues_with_findings"] == 3
    published = str(out.metadata) + out.description
    assert key not in published and password not in published and "1234" not in published
    # What the redactor leaves behind passes the verifier.
    from llama_platform.data.redaction import redact

    for text in (df.loc[0, "body"], df.loc[1, "comments_text"], df.loc[2, "title"]):
        assert verify(redact(text)[0]) == []


def test_verifier_rules_come_from_another_source_than_the_redactor():
    # detect-secrets' plugins (Yelp's rule set), not Betterleaks' rules the redactor runs.
    from llama_platform.data.secrets import betterleaks_rules
    from llama_platform.data.verify import detect_secrets_rules

    ours = {r.regex.pattern for r in betterleaks_rules()}
    theirs = detect_secrets_rules()
    assert len(theirs) >= 20 and not ours & {rx.pattern for _, rx, _ in theirs}
    assert {"GitHubToken", "AWSAccessKey", "SecretKeyword", "PrivateKey"} <= {name for name, _, _ in theirs}


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f2a9c1b7d4e5f60718293a4b5c6d7e8f9012345 and sha256:" + "ab12" * 16,
        "path /usr/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
        "uuid 123e4567-e89b-42d3-a456-426614174000, AbstractSingletonProxyFactoryBeanTestsWithLongNames",
        '<img src="data:image/png;base64,' + "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk" * 3 + '">',
    ],
)
def test_entropy_sampler_passes_known_safe_shapes(text):
    from llama_platform.data.verify import verify

    assert verify(text) == []


@pytest.mark.parametrize(
    "text",
    [
        'password = "changeme"', 'db_password = "password"', 'api_key = "abc"', 'secret_key = "dev"',
        'password: "${DB_PASS}"', 'secret = "<your secret>"', '"password": ""', "PASSWORD=changeme", "password: required",
    ],
)  # fmt: skip
def test_what_the_redactor_keeps_does_not_block_the_snapshot(text):
    # The verifier's keyword rule reads any quoted literal after a credential name as a secret: the
    # redactor removes those too (placeholders or not), and keeps only references and prose.
    from llama_platform.data.redaction import redact
    from llama_platform.data.verify import verify

    assert verify(redact(text)[0]) == []


@pytest.mark.parametrize(
    "text, rule",
    [
        ("PGPASSWORD=" + "hunter42" + " psql -h db", "SECRET:PasswordVariable"),
        ("MYSQL_ROOT_PASSWORD: " + "root", "SECRET:PasswordVariable"),
        ("docker login -u bob -p " + "Sup3rS3cret!", "SECRET:CLIPassword"),
        ("sshpass -p " + "hunter42" + " ssh deploy@build", "SECRET:CLIPassword"),
        ("machine api.example.com login bob password " + "hunter42", "SECRET:NetrcPassword"),
        ("https://" + "3f9a0c1d" * 4 + "@o1.ingest.sentry.io/2", "SECRET:URLKeyCredentials"),
        ("write to bob at example dot com", "EMAIL"),
    ],
)
def test_verifier_flags_the_prose_forms_and_passes_their_redaction(text, rule):
    # Its own regexes for these forms (detect-secrets has no plugin for them): a leak blocks the
    # snapshot, and what the redactor leaves does not.
    from llama_platform.data.redaction import redact
    from llama_platform.data.verify import verify

    assert rule in verify(text)
    assert verify(redact(text)[0]) == []
