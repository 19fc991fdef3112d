"""Map forge label names (GitHub/Gitee, English and Chinese variants) onto the training vocabulary.

Unknown labels are simply not part of the target (most labels are areas, priorities or statuses);
the cleaning step filters issues that end up with no canonical label as `no_label`.
"""

from __future__ import annotations

import re

LABELS = ("bug", "feature", "question", "docs")

# Keys are normalised names (see _normalise): lower case, prefix and decoration stripped.
_SYNONYMS: dict[str, str] = {
    # bug
    "bug": "bug",
    "bugs": "bug",
    "bug report": "bug",
    "confirmed bug": "bug",
    "defect": "bug",
    "crash": "bug",
    "regression": "bug",
    "缺陷": "bug",
    "错误": "bug",
    "故障": "bug",
    "bug修复": "bug",
    # feature
    "feature": "feature",
    "features": "feature",
    "feature request": "feature",
    "new feature": "feature",
    "enhancement": "feature",
    "improvement": "feature",
    "需求": "feature",
    "新需求": "feature",
    "新功能": "feature",
    "功能": "feature",
    "特性": "feature",
    "增强": "feature",
    # question
    "question": "question",
    "questions": "question",
    "support": "question",
    "usage": "question",
    "help": "question",
    "问题": "question",
    "疑问": "question",
    "咨询": "question",
    # docs
    "docs": "docs",
    "doc": "docs",
    "documentation": "docs",
    "文档": "docs",
}

# "type: bug", "kind/bug", "T-bug", "issue-type: bug", "area/docs" ...
_PREFIX = re.compile(r"^(?:type|kind|t|category|issue[ _-]?type|area|topic)\s*[:/_-]\s*")
# Emoji and punctuation around a label ("🐛 bug", "[bug]", "bug ✨").
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def _normalise(name: str) -> str:
    s = " ".join(name.strip().lower().split())
    s = _EDGE.sub("", s)
    s = _PREFIX.sub("", s)
    return _EDGE.sub("", s).replace("_", " ")


def canonical_label(raw: str) -> str | None:
    """The canonical label for one forge label name, or None if it is not a training class."""
    if not isinstance(raw, str):
        return None
    return _SYNONYMS.get(_normalise(raw))


def canonical_labels(raw_labels: list[str]) -> list[str]:
    """Canonical labels of an issue, without repeats, in vocabulary order.

    Vocabulary order (not forge order) makes the primary label deterministic: GitHub returns labels
    alphabetically, Gitee in creation order, and both would otherwise decide "bug" vs "docs" by chance.
    """
    found = {canonical_label(name) for name in raw_labels or []}
    return [label for label in LABELS if label in found]
