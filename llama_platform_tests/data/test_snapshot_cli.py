import argparse
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from llama_platform.data.cleaning import clean_issues
from llama_platform.data.snapshot import write_snapshot
from llama_platform.data.splits import assign_splits
from llama_platform.data.store import open_store
from llama_platform.snapshot_cli import add_snapshot_commands, cmd_diff, cmd_list, cmd_show
from llama_platform_tests.data.factories import frame, gh_row

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
LINEAGE = {"raw_partitions": ["github:acme/server"], "code_version": "0.1.0"}


def _snapshot(numbers, edited=()):
    rows = [
        gh_row(number=i, title=f"Issue {i} breaks the exporter" + (" (edited)" if i in edited else ""),
               body=f"Report {i}: " + "the exporter writes empty files " * (i % 5 + 3),
               labels=("bug",) if i % 3 else ("feature",))
        for i in numbers
    ]  # fmt: skip
    cleaned = clean_issues(frame(rows)).cleaned
    return cleaned.assign(split=assign_splits(cleaned["dup_cluster"]))


@pytest.fixture(params=["folder", "s3"])
def store_with_two(request, tmp_path):
    if request.param == "folder":
        store = open_store(f"file://{tmp_path}/store")
    else:
        s3 = request.getfixturevalue("s3_server")
        # Not the s3_bucket fixture: it derives the name from the test id, and "[s3]" is not a bucket name.
        bucket = s3.make_bucket(f"t-cli-{request.node.originalname.replace('_', '-')}")
        store = open_store(f"s3://{bucket}/ds", s3.endpoint_url, s3.access_key, s3.secret_key)
    a = write_snapshot(store, _snapshot(range(0, 12)), LINEAGE, created_at=T0)
    # B: issues 0-2 gone, 12-16 new, issue 5 edited.
    b = write_snapshot(store, _snapshot(range(3, 17), edited={5}), LINEAGE, created_at=T0 + timedelta(days=1))
    return store, a, b


def _run(fn, *args, **kwargs) -> str:
    out = io.StringIO()
    assert fn(*args, out=out, **kwargs) == 0
    return out.getvalue()


def test_list(store_with_two):
    store, a, b = store_with_two
    text = _run(cmd_list, store)
    lines = text.splitlines()
    assert lines[0].split()[:6] == ["VERSION", "CREATED", "TRAIN", "VAL", "TEST", "TOTAL"]
    assert lines[1].startswith(a.version) and lines[2].startswith(f"{b.version} *")
    assert a.content_hash in lines[1] and "2025-01-01 00:00:00" in lines[1]
    rows = json.loads(_run(cmd_list, store, as_json=True))
    assert [r["version"] for r in rows] == [a.version, b.version]
    assert rows[0]["row_counts"] == a.row_counts and rows[0]["total_rows"] == 12 and rows[1]["latest"]


def test_show(store_with_two):
    store, a, b = store_with_two
    text = _run(cmd_show, store, None)  # latest
    assert f"snapshot   {b.version}" in text and b.content_hash in text
    assert '"github:acme/server"' in text and "code_version" in text
    label_lines = {line.split()[0]: line.split() for line in text.splitlines() if line.split() and line.split()[0] in ("bug", "feature")}
    assert int(label_lines["bug"][-1]) + int(label_lines["feature"][-1]) == 14
    shown = json.loads(_run(cmd_show, store, a.version, as_json=True))
    assert shown["content_hash"] == a.content_hash and shown["lineage"] == LINEAGE
    with pytest.raises(FileNotFoundError):
        cmd_show(store, "f" * 16, out=io.StringIO())


def test_diff(store_with_two):
    store, a, b = store_with_two
    d = json.loads(_run(cmd_diff, store, a.version, b.version, as_json=True))
    assert d["rows"] == {"a": 12, "b": 14, "delta": 2}
    assert d["issues"] == {"added": 5, "removed": 3, "changed": 1, "moved_split": 0, "unchanged": 8}
    assert sum(c["delta"] for c in d["splits"].values()) == 2
    assert d["labels"]["feature"]["a"] == 4  # 0, 3, 6, 9
    text = _run(cmd_diff, store, a.version, b.version)
    assert "rows" in text and "+2" in text and "added=5" in text and "removed=3" in text


def test_argparse_wiring(tmp_path, capsys):
    store = open_store(f"file://{tmp_path}/store")
    info = write_snapshot(store, _snapshot(range(4)), LINEAGE, created_at=T0)
    parser = argparse.ArgumentParser(prog="llama-platform")
    add_snapshot_commands(parser.add_subparsers(dest="command", required=True), lambda: store)
    for argv in (["snapshots", "list"], ["snapshots", "show", info.version, "--json"], ["snapshots", "diff", info.version, info.version]):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
    out = capsys.readouterr().out
    assert info.version in out and '"content_hash"' in out and "added=0" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["snapshots"])  # a subcommand is required
