import pytest

from llama_platform.data.labels import LABELS, canonical_label, canonical_labels


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("bug", "bug"),
        ("type: bug", "bug"),
        ("kind/bug", "bug"),
        ("🐛 Bug", "bug"),
        ("[BUG]", "bug"),
        ("缺陷", "bug"),
        ("enhancement", "feature"),
        ("Feature Request", "feature"),
        ("type: feature", "feature"),
        ("需求", "feature"),
        ("question", "question"),
        ("问题", "question"),
        ("documentation", "docs"),
        ("area/docs", "docs"),
        ("文档", "docs"),
    ],
)
def test_known_forge_labels_map_to_vocabulary(raw, expected):
    assert canonical_label(raw) == expected


@pytest.mark.parametrize("raw", ["priority: high", "good first issue", "help wanted", "wontfix", "", "debugging"])
def test_unknown_labels_are_not_targets(raw):
    assert canonical_label(raw) is None


def test_canonical_labels_dedupes_drops_unknown_and_uses_vocabulary_order():
    assert canonical_labels(["documentation", "priority: p1", "type: bug", "Bug", "文档"]) == ["bug", "docs"]
    assert canonical_labels(["wontfix"]) == []
    assert canonical_labels([]) == []
    assert set(canonical_labels(list(LABELS))) == set(LABELS)


def test_non_string_label_is_ignored_not_an_error():
    assert canonical_labels([None, 3, "bug"]) == ["bug"]  # type: ignore[list-item]
