from datetime import datetime, timedelta, timezone

import pytest

import numpy as np

from llama_platform.data.dedup import minhash_signatures, near_duplicate_clusters, shingle_hashes, shingles, survivors

BASE = (
    "The application crashes on startup when the configuration file contains a trailing comma in the "
    "plugins list. The error message says unexpected token and points at line forty two of the loader. "
    "Removing the comma makes it start again, but the parser should accept or clearly report it."
)
OTHER = (
    "Please add a dark theme to the settings page. Many users work at night and the bright background "
    "is tiring; a toggle next to the language selector would be enough for a first version of this."
)


def test_shingles_are_five_word_grams_and_cjk_aware():
    assert shingles("a b c d e f") == {b"a b c d e", b"b c d e f"}
    assert shingles("Just three words") == {b"just three words"}
    assert shingles("") == set()
    assert b"\xe5\x90\xaf \xe5\x8a\xa8 \xe5\xa4\xb1 \xe8\xb4\xa5 \xe4\xba\x86" in shingles("启动失败了")


def test_near_duplicates_cluster_to_the_smallest_id():
    near = BASE.replace("forty two", "forty three")  # one word changed
    ids = ["gitee:m/app#I9", "github:a/app#7", "github:b/app#1", "github:c/other#5"]
    clusters = near_duplicate_clusters(ids, [near, BASE, BASE.upper(), OTHER])
    assert clusters["github:a/app#7"] == clusters["github:b/app#1"] == clusters["gitee:m/app#I9"] == "gitee:m/app#I9"
    assert clusters["github:c/other#5"] == "github:c/other#5"


def _jaccard(x: str, y: str) -> float:
    sx, sy = shingles(x), shingles(y)
    return len(sx & sy) / len(sx | sy)


def test_transitive_chain_is_one_component():
    words = [f"w{i}" for i in range(200)]
    a = " ".join(words)
    b = " ".join(words[:176] + [f"tail{i}" for i in range(24)])
    c = " ".join([f"head{i}" for i in range(24)] + b.split()[24:])
    # a~b and b~c are near-duplicates, a~c alone is not: only the chain joins them.
    assert _jaccard(a, b) > 0.77 and _jaccard(b, c) > 0.77 and _jaccard(a, c) < 0.62
    clusters = near_duplicate_clusters(["3", "2", "1"], [a, b, c])
    assert set(clusters.values()) == {"1"}
    assert near_duplicate_clusters(["3", "1"], [a, c]) == {"3": "3", "1": "1"}


def test_distinct_and_empty_texts_stay_apart():
    clusters = near_duplicate_clusters(["a", "b", "c", "d"], [BASE, OTHER, "", "   "])
    assert clusters == {"a": "a", "b": "b", "c": "c", "d": "d"}
    assert near_duplicate_clusters([], []) == {}


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        near_duplicate_clusters(["a", "a"], [BASE, BASE])
    with pytest.raises(ValueError):
        near_duplicate_clusters(["a"], [BASE, OTHER])


def test_survivor_is_earliest_created_then_smallest_id():
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    ids = ["x", "b", "a", "solo"]
    clusters = {"x": "a", "b": "a", "a": "a", "solo": "solo"}
    created = [t0, t0 + timedelta(days=1), t0 + timedelta(days=2), t0]
    assert survivors(ids, created, clusters) == {"x", "solo"}
    # Same creation time: the smaller id wins.
    assert survivors(["b", "a"], [t0, t0], {"a": "a", "b": "a"}) == {"a"}
    with pytest.raises(ValueError):
        survivors(["a"], [], {"a": "a"})


def test_shingle_hashes_match_the_shingles():
    texts = [BASE, OTHER, "", "Just three words", "启动失败了，请帮忙看看", BASE + " " + BASE]
    hashes, counts = shingle_hashes(texts)
    assert counts.sum() == len(hashes)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i, text in enumerate(texts):
        own = hashes[offsets[i] : offsets[i + 1]]
        # One hash per k-gram position, and as many distinct hashes as distinct shingles.
        assert len(set(own.tolist())) == len(shingles(text))
    # Order matters within a shingle, and texts do not bleed into each other.
    (a, _), (b, _) = shingle_hashes(["a b c d e"]), shingle_hashes(["e d c b a"])
    assert a.tolist() != b.tolist()
    joined, _ = shingle_hashes(["a b c", "d e f"])
    assert len(joined) == 2


def test_signatures_estimate_jaccard_like_datasketch():
    # datasketch is the reference MinHash; rensa's estimates must agree with it (and with the truth).
    from datasketch import MinHash

    near = BASE.replace("forty two", "forty three").replace("crashes", "fails")
    pairs = [(BASE, near), (BASE, OTHER), (BASE, BASE.upper()), (OTHER, OTHER + " Thanks a lot for this.")]
    sigs, usable = minhash_signatures([t for pair in pairs for t in pair])
    assert usable.all()
    for k, (x, y) in enumerate(pairs):
        ours = float(np.mean(sigs[2 * k] == sigs[2 * k + 1]))
        reference = []
        for text in (x, y):
            m = MinHash(num_perm=256)
            m.update_batch(list(shingles(text)))
            reference.append(m)
        assert abs(ours - reference[0].jaccard(reference[1])) < 0.12
        assert abs(ours - _jaccard(x, y)) < 0.12


def test_signatures_are_reproducible_and_empty_texts_unusable():
    a, ua = minhash_signatures([BASE, "", OTHER])
    b, ub = minhash_signatures([BASE, "", OTHER])
    assert (a == b).all() and ua.tolist() == ub.tolist() == [True, False, True]
    assert not a[1].any()


def test_spilled_signatures_give_the_same_pairs(tmp_path):
    from llama_platform.data.dedup import MinHashIndex

    texts = [BASE, BASE.replace("forty two", "forty three"), OTHER, "", BASE.upper(), OTHER + " Thanks."]
    sigs, usable = minhash_signatures(texts)
    in_memory, spilled = MinHashIndex(), MinHashIndex(spill_path=tmp_path / "sigs.u32")
    for index in (in_memory, spilled):
        index.add([0, 1, 2], sigs[:3], usable[:3])  # two chunks, as a stream adds them
        index.add([3, 4, 5], sigs[3:], usable[3:])
    assert spilled.pairs() == in_memory.pairs() != set()
    assert (tmp_path / "sigs.u32").stat().st_size == usable.sum() * 256 * 4  # on disk, not in memory
    ids = ["a", "b", "c", "d", "e", "f"]
    assert spilled.clusters(ids, id_of=dict(enumerate(ids))) == in_memory.clusters(ids, id_of=dict(enumerate(ids)))


def test_a_batch_shorter_than_a_shingle_is_one_shingle():
    sigs, usable = minhash_signatures(["Application crashes immediately"])  # 3 tokens in the whole batch
    assert usable.tolist() == [True] and sigs[0].any()
    hashes, counts = shingle_hashes(["a b", "c"])
    assert counts.tolist() == [1, 1] and len(set(hashes.tolist())) == 2


def test_cluster_roots_hold_only_ids_with_a_near_duplicate():
    from llama_platform.data.dedup import MinHashIndex

    ids = ["c", "a", "b", "solo"]
    texts = [BASE, BASE.replace("forty two", "forty three"), OTHER, "A different report about the printer driver."]
    index = MinHashIndex()
    index.add(ids, *minhash_signatures(texts))
    roots = index.cluster_roots()
    assert roots == {"a": "a", "c": "a"}  # "b" and "solo" have no near-duplicate: not held
    assert index.clusters(ids) == {"c": "a", "a": "a", "b": "b", "solo": "solo"}
