"""The corpus file format shared by the generator, the recorder and the replay forge.

A corpus is a folder of `<source>__<owner>__<name>.json.gz` files, one per repo, each holding
`{"source": "github"|"gitee", "repo": "owner/name", "issues": [...], "comments": [...]}` with the
issues and repo-wide comments exactly as the forge's REST API returns them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from llama_platform.sources.records import SOURCES

SUFFIX = ".json.gz"


class CorpusError(ValueError):
    """A corpus file that is missing, unreadable or not in the corpus format."""


def corpus_filename(source: str, repo: str) -> str:
    owner, sep, name = repo.partition("/")
    if source not in SOURCES or not sep or not owner or not name or "/" in name:
        raise CorpusError(f"bad source/repo: {source!r} {repo!r} (want github|gitee and owner/name)")
    return f"{source}__{owner}__{name}{SUFFIX}"


def partition_key(source: str, repo: str) -> str:
    return f"{source}:{repo}"


def dump_json_gz(obj: Any) -> bytes:
    """Reproducible bytes: fixed separators, UTF-8 kept readable, no gzip timestamp or file name."""
    raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=9, mtime=0)


def write_repo_file(out_dir: Path | str, source: str, repo: str, issues: list, comments: list,
                    wire: dict | None = None) -> Path:
    """`wire`: the replay forge's wire quirks for this repo (see `replay.forge`); omitted when None."""
    path = Path(out_dir) / corpus_filename(source, repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"source": source, "repo": repo, "issues": issues, "comments": comments}
    if wire:
        data["wire"] = wire
    # Write then rename, so a crash never leaves a truncated file that looks like a corpus.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(dump_json_gz(data))
    tmp.replace(path)
    return path


def load_repo_file(path: Path | str) -> dict:
    path = Path(path)
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise CorpusError(f"{path.name}: not a gzip'd JSON corpus file ({exc})") from exc
    if not isinstance(data, dict) or not {"source", "repo", "issues", "comments"} <= data.keys():
        raise CorpusError(f"{path.name}: expected keys source, repo, issues, comments")
    if not isinstance(data["issues"], list) or not isinstance(data["comments"], list):
        raise CorpusError(f"{path.name}: issues and comments must be lists")
    expected = corpus_filename(data["source"], data["repo"])
    if path.name != expected:
        raise CorpusError(f"{path.name}: holds {data['source']}:{data['repo']}, which belongs in {expected}")
    return data


def corpus_files(corpus_dir: Path | str) -> list[Path]:
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder not found: {corpus_dir}")
    return sorted(p for p in corpus_dir.iterdir() if p.name.endswith(SUFFIX))


def load_corpus(corpus_dir: Path | str) -> list[dict]:
    """Every repo's corpus dict in the folder, in file-name order."""
    return [load_repo_file(p) for p in corpus_files(corpus_dir)]


def corpus_repos(corpus_dir: Path | str) -> list[str]:
    """Partition-style keys, `"github:owner/name"`, of the repos in the folder (from file names)."""
    keys = []
    for path in corpus_files(corpus_dir):
        parts = path.name[: -len(SUFFIX)].split("__")
        if len(parts) == 3 and parts[0] in SOURCES:
            keys.append(partition_key(parts[0], f"{parts[1]}/{parts[2]}"))
        else:  # a name with "__" inside owner/name is ambiguous: ask the file itself
            data = load_repo_file(path)
            keys.append(partition_key(data["source"], data["repo"]))
    return keys
