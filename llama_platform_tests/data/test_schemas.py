import pandas as pd
import pytest
from pandera.errors import SchemaError, SchemaErrors

from llama_platform.data.schemas import (
    CleanedIssuesSchema,
    FilteredIssuesSchema,
    QuarantinedIssuesSchema,
    RawIssuesSchema,
    SnapshotSchema,
)
from llama_platform_tests.data.factories import frame, gh_row


def _cleaned(**overrides) -> pd.DataFrame:
    ts = pd.to_datetime(["2024-01-01T00:00:00Z"], utc=True)
    row = {
        "issue_id": ["github:a/b#1"], "source": ["github"], "repo": ["a/b"], "number": ["1"],
        "title": ["t"], "body": ["b"], "comments_text": [""], "n_comments": [0], "labels": [["bug", "docs"]],
        "label": ["bug"], "lang": ["en"], "state": ["open"], "author": ["<USER_abcdef>"], "author_association": [None],
        "created_at": ts, "updated_at": ts, "closed_at": pd.to_datetime([None], utc=True),
        "dup_cluster": ["github:a/b#1"], "redactions": [0], "raw_hash": ["h"],
    }  # fmt: skip
    row.update(overrides)
    return pd.DataFrame(row)


def test_raw_schema_accepts_connector_rows_and_rejects_bad_hashes():
    raw = frame([gh_row(number=1), gh_row(number=2)])
    RawIssuesSchema.validate(raw)
    with pytest.raises(SchemaError):
        RawIssuesSchema.validate(raw.assign(payload_sha256="nothex"))
    with pytest.raises((SchemaError, SchemaErrors)):
        RawIssuesSchema.validate(raw.assign(extra=1))  # strict: unknown columns are refused


def test_cleaned_schema_positive():
    CleanedIssuesSchema.validate(_cleaned())


@pytest.mark.parametrize(
    "overrides",
    [
        {"label": ["docs"]},  # not the first of labels
        {"labels": [[]], "label": ["bug"]},  # no labels
        {"labels": [["bug", "wontfix"]]},  # not canonical
        {"source": ["gitlab"], "issue_id": ["gitlab:a/b#1"]},
        {"issue_id": ["github:a/b#2"]},  # does not match its key
        {"author": ["alice"]},  # not pseudonymised
        {"lang": ["english"]},  # not an ISO 639-1 code we tag
        {"n_comments": [-1]},
        {"state": ["progressing"]},
        {"created_at": pd.to_datetime(["2024-01-01T00:00:00"])},  # naive timestamp
    ],
)
def test_cleaned_schema_negative(overrides):
    with pytest.raises(SchemaError):
        CleanedIssuesSchema.validate(_cleaned(**overrides))


def test_cleaned_issue_ids_are_unique():
    df = pd.concat([_cleaned(), _cleaned()], ignore_index=True)
    with pytest.raises(SchemaError):
        CleanedIssuesSchema.validate(df)


def test_snapshot_schema_requires_a_known_split():
    SnapshotSchema.validate(_cleaned().assign(split="val"))
    with pytest.raises(SchemaError):
        SnapshotSchema.validate(_cleaned().assign(split="dev"))
    with pytest.raises(SchemaError):
        SnapshotSchema.validate(_cleaned())


def test_quarantine_and_filter_reasons_are_constrained():
    q = pd.DataFrame(
        {"issue_id": ["github:a/b#1"], "source": ["github"], "repo": ["a/b"], "number": ["1"],
         "reason": ["malformed:invalid_json"], "detail": ["x"], "payload_sha256": ["0" * 64]}
    )  # fmt: skip
    QuarantinedIssuesSchema.validate(q)
    QuarantinedIssuesSchema.validate(q.assign(reason="too_large", source=None))
    with pytest.raises(SchemaError):
        QuarantinedIssuesSchema.validate(q.assign(reason="because"))
    f = pd.DataFrame({"issue_id": ["github:a/b#1"], "source": ["github"], "repo": ["a/b"], "number": ["1"], "reason": ["no_label"]})
    FilteredIssuesSchema.validate(f)
    with pytest.raises(SchemaError):
        FilteredIssuesSchema.validate(f.assign(reason="dropped"))
