"""Record a live forge repo into a corpus file, so the replay forge can serve it later.

`llama-platform record OWNER/REPO [--source github|gitee]` calls `record_repo` with a connector.
The file is in the corpus format (see `corpus.py`): issues and repo-wide comments exactly as the
forge sent them, ordered by id, so recording the replay forge reproduces its corpus file byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from llama_platform.replay.corpus import write_repo_file
from llama_platform.sources.forge import Forge, check_repo


def record_repo(forge: Forge, source: str, repo: str, out_dir: Path) -> Path:
    """Fetch every issue (and PR) of `repo` with its comments and write `<out_dir>/<source>__<owner>__<name>.json.gz`."""
    check_repo(repo)
    if getattr(forge, "source", source) != source:
        raise ValueError(f"connector is for {forge.source!r}, asked to record {source!r}")
    issues: list[dict] = []
    comments: dict[object, dict] = {}
    for issue, issue_comments in forge.fetch_issues(repo):
        issues.append(issue)
        for c in issue_comments:
            comments[c.get("id")] = c  # a comment refetched per issue is the same object: keep one
    issues.sort(key=_id_key)
    return write_repo_file(out_dir, source, repo, issues, sorted(comments.values(), key=_id_key))


def _id_key(obj: dict) -> tuple[int, str]:
    ident = obj.get("id")
    return (ident, "") if isinstance(ident, int) else (0, str(ident))
