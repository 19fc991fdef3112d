"""Near-duplicate clustering with MinHash LSH (datasketch).

The same issue is often filed twice, mirrored between GitHub and Gitee, or copied across forks;
keeping every copy would over-weight it and leak it across train/test splits. Texts are shingled
into 5-word n-grams; LSH proposes candidate pairs, each pair is confirmed by its estimated Jaccard
similarity, and connected components of confirmed pairs form the clusters.
"""

from __future__ import annotations

import re
import zlib
from datetime import datetime
from typing import Sequence

from datasketch import MinHash, MinHashLSH

NUM_PERM = 256
SHINGLE_WORDS = 5
THRESHOLD = 0.7
# LSH bands of 7 rows (36 bands at 256 permutations): a pair at Jaccard 0.7 becomes a candidate with
# probability ~0.95, at 0.8 ~1.0, at 0.4 ~0.06. datasketch's default balance would find only half
# of the pairs at the threshold; the extra candidates are cheap because each one is confirmed below.
ROWS_PER_BAND = 7

# A CJK character is one token (Chinese has no spaces between words); other tokens are \w runs.
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\u3400-\u9fff\uf900-\ufaff]+")


def shingles(text: str, k: int = SHINGLE_WORDS) -> set[bytes]:
    """Word k-gram shingles of a lower-cased text; a text shorter than k words is one shingle."""
    tokens = _TOKEN.findall(text.lower())
    if not tokens:
        return set()
    if len(tokens) < k:
        return {" ".join(tokens).encode("utf-8")}
    return {" ".join(tokens[i : i + k]).encode("utf-8") for i in range(len(tokens) - k + 1)}


class _UnionFind:
    def __init__(self, items: Sequence[str]):
        self.parent = {x: x for x in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression keeps later finds O(1)-ish
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller id becomes the root, so the root is the cluster id.
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


def near_duplicate_clusters(
    ids: list[str],
    texts: list[str],
    threshold: float = THRESHOLD,
    num_perm: int = NUM_PERM,
) -> dict[str, str]:
    """Map each id to its cluster id: the smallest id of its connected component of near-duplicates."""
    if len(ids) != len(texts):
        raise ValueError(f"ids and texts differ in length ({len(ids)} != {len(texts)})")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    uf = _UnionFind(ids)
    shingle_sets = [shingles(t or "") for t in texts]
    # Texts without any token have an "empty" MinHash that would collide with every other empty one.
    usable = [i for i, s in enumerate(shingle_sets) if s]
    if len(usable) < 2:
        return {x: uf.find(x) for x in ids}
    # crc32 (C, stable across processes) instead of datasketch's default sha1: ~5x faster per
    # shingle, and the random permutations on top make its weak mixing irrelevant here.
    minhashes = MinHash.bulk((shingle_sets[i] for i in usable), num_perm=num_perm, hashfunc=zlib.crc32)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(num_perm // ROWS_PER_BAND, ROWS_PER_BAND))
    with lsh.insertion_session() as session:
        for i, mh in zip(usable, minhashes):
            session.insert(ids[i], mh)
    by_id = {ids[i]: mh for i, mh in zip(usable, minhashes)}
    for i, mh in zip(usable, minhashes):
        for other in lsh.query(mh):
            # LSH candidates are probable, not certain: confirm with the Jaccard estimate.
            if other != ids[i] and mh.jaccard(by_id[other]) >= threshold:
                uf.union(ids[i], other)
    return {x: uf.find(x) for x in ids}


def survivors(ids: Sequence[str], created_at: Sequence[datetime], clusters: dict[str, str]) -> set[str]:
    """One id per cluster: the earliest created (the original report), ties broken by the smallest id."""
    if len(ids) != len(created_at):
        raise ValueError(f"ids and created_at differ in length ({len(ids)} != {len(created_at)})")
    best: dict[str, tuple] = {}
    for id_, ts in zip(ids, created_at):
        cluster = clusters[id_]
        key = (ts, id_)
        if cluster not in best or key < best[cluster]:
            best[cluster] = key
    return {key[1] for key in best.values()}
