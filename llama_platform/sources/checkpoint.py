"""A resumable fetch: the pagination cursor and every completed page, kept in a folder.

    cp = FetchCheckpoint(".llama_platform/checkpoints/github/octo/widgets")
    rows = list(forge.fetch_repo("octo/widgets", since=start, checkpoint=cp))   # killed on page 40?
    rows = list(forge.fetch_repo("octo/widgets", since=start, checkpoint=cp))   # resumes at page 40
    store(rows); cp.clear()

The folder holds `state.json` (small: phase, cursor per pass, page counts) and one JSON file per
completed page (`comments-00001.json`, `issues-00001.json`, ...), each written before `state.json`
names it, both by write-then-rename, so a kill at any point leaves a consistent checkpoint. A
resumed fetch first replays the spooled pages (a killed run's rows lived only in its memory), then
continues from the cursor, so it yields the complete set: no gaps, no duplicates. A finished
checkpoint replays its pages without a single request, so re-running is idempotent; `clear()` it
once the rows are stored. `FetchCheckpoint()` without a path keeps the same state in memory (a
retry within one process).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

VERSION = 1
PHASES = ("comments", "issues", "done")


class CheckpointMismatch(ValueError):
    """The checkpoint belongs to another fetch (forge, repo or since)."""


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


class FetchCheckpoint:
    def __init__(self, path: str | Path | None = None, keep_pages: bool = True):
        self.path = Path(path) if path is not None else None
        self._keep_pages = keep_pages or self.path is not None
        self._memory_pages: dict[str, list[list]] = {"comments": [], "issues": []}
        self.state: dict[str, Any] | None = None
        if self.path is not None and (self.path / "state.json").exists():
            self.state = json.loads((self.path / "state.json").read_text(encoding="utf-8"))
            if self.state.get("version") != VERSION:
                raise CheckpointMismatch(f"{self.path}: checkpoint version {self.state.get('version')!r}, expected {VERSION}")

    @classmethod
    def coerce(cls, checkpoint: "FetchCheckpoint | str | Path | None") -> "FetchCheckpoint":
        if checkpoint is None:
            return cls(keep_pages=False)  # nothing to resume from: don't hold pages twice
        return checkpoint if isinstance(checkpoint, FetchCheckpoint) else cls(checkpoint)

    # -- lifecycle --
    def bind(self, source: str, repo: str, since: datetime | None) -> None:
        """Start a new fetch, or check that a resumed one is the same fetch."""
        ident = {"source": source, "repo": repo, "since": since.isoformat() if since else None}
        if self.state is None:
            self.state = {"version": VERSION, **ident, "phase": "comments", "passes": {}, "pages": {"comments": 0, "issues": 0},
                          "attempts": 0}
        elif {k: self.state.get(k) for k in ident} != ident:
            got = {k: self.state.get(k) for k in ident}
            raise CheckpointMismatch(f"checkpoint is for {got}, not {ident}: clear() it or use another path")
        self.state["attempts"] += 1
        self._save()

    @property
    def resumed(self) -> bool:
        """True when this fetch continues an earlier, interrupted attempt."""
        return bool(self.state) and self.state["attempts"] > 1

    @property
    def phase(self) -> str:
        return self.state["phase"] if self.state else "comments"

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def set_phase(self, phase: str) -> None:
        assert phase in PHASES, phase
        self.state["phase"] = phase
        self._save()

    def clear(self) -> None:
        """Forget everything (after the fetched rows are stored)."""
        self.state = None
        self._memory_pages = {"comments": [], "issues": []}
        if self.path is not None and self.path.exists():
            shutil.rmtree(self.path)

    # -- passes and pages --
    def pass_state(self, kind: str) -> dict | None:
        return self.state["passes"].get(kind) if self.state else None

    def page_count(self, kind: str) -> int:
        return self.state["pages"][kind] if self.state else 0

    def page_done(self, kind: str, records: list, cursor: dict) -> None:
        """Record one completed page: its records first, then the cursor that points past it."""
        n = self.state["pages"][kind] + 1
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            _write_json(self.path / f"{kind}-{n:05d}.json", records)
        elif self._keep_pages:
            self._memory_pages[kind].append(records)
        self.state["pages"][kind] = n
        self.state["passes"][kind] = cursor
        self._save()

    def pages(self, kind: str) -> Iterator[list]:
        """The records of every completed page of `kind`, in order."""
        n = self.page_count(kind)
        if self.path is None:
            if n and not self._keep_pages:
                raise RuntimeError("this in-memory checkpoint kept no pages")
            yield from self._memory_pages[kind][:n]
            return
        for i in range(1, n + 1):
            yield json.loads((self.path / f"{kind}-{i:05d}.json").read_text(encoding="utf-8"))

    def _save(self) -> None:
        if self.path is not None and self.state is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            _write_json(self.path / "state.json", self.state)
