"""Data and stub assets for the Dagster-layer tests."""

from __future__ import annotations

import pandas as pd
from dagster import asset

from llama_platform.data.cleaning import clean_issues
from llama_platform_tests.data.factories import frame, gh_comment, gh_row

LABEL_ROTATION = (("bug",), ("feature",), ("question",), ("bug", "docs"))
TOPICS = (
    "the importer crashes on empty CSV files",
    "add a dark mode toggle to the settings page",
    "how do I configure the cache directory on Windows",
    "the README install steps fail on Python 3.12",
    "memory grows without bound when streaming large uploads",
    "support YAML configuration files next to TOML",
    "the CLI ignores the --quiet flag in batch mode",
    "docs: the API reference misses the retry options",
    "timeouts are not honoured by the websocket client",
    "allow plugins to register custom exporters",
    "the scheduler runs jobs twice after daylight saving changes",
    "segfault in the native extension when the input has NUL bytes",
)


def raw_rows(labels=LABEL_ROTATION) -> list[dict]:
    """Distinct, label-varied issues plus one of each filtered/quarantined kind."""
    rows = [
        gh_row(
            number=i + 1,
            title=f"{topic.capitalize()} (case {i})",
            body=f"Report {i}: {topic}. Steps: run the tool with defaults, observe that {topic}. "
            f"Version {i}.{i % 3}.0 on Linux, reproducible every time ({'x' * (i % 5)}).",
            labels=labels[i % len(labels)],
            comments=[gh_comment("bob", f"I can reproduce case {i} as well, same stack trace.")],
        )
        for i, topic in enumerate(TOPICS)
    ]
    rows.append(gh_row(number=100, title="Bump deps", body="Automated update of the lock file " * 3, pull_request=True))
    rows.append(gh_row(number=101, title="Weekly dependency dashboard", login="renovate[bot]", user_type="Bot"))
    bad = gh_row(number=102)
    bad["payload"] = '{"issue": {"number": 102, "title": 5}'  # truncated JSON
    rows.append(bad)
    return rows


def raw_frame(labels=LABEL_ROTATION):
    return frame(raw_rows(labels))


def cleaned_frame(labels=LABEL_ROTATION):
    return clean_issues(raw_frame(labels)).cleaned




def stub(key: str, df: pd.DataFrame):
    """An asset named `key` that just returns `df` (stored by the parquet IO manager): crafted upstream data."""

    @asset(name=key, io_manager_key="parquet_io_manager")
    def _stub() -> pd.DataFrame:
        return df

    return _stub
