"""Near-duplicate clustering with MinHash LSH (datasketch).

The same issue is often filed twice, mirrored between GitHub and Gitee, or copied across forks;
keeping every copy would over-weight it and leak it across train/test splits. Texts are shingled
into 5-word n-grams and MinHashed (datasketch, 256 permutations); LSH banding proposes candidate
pairs, each pair is confirmed by its estimated Jaccard similarity (>= 0.7), and connected components
of confirmed pairs form the clusters. The index is incremental, so a stream of chunks shares one.
"""

from __future__ import annotations

import re
import zlib
from datetime import datetime
from typing import Any, Hashable, Mapping, Sequence, cast

import numpy as np
from datasketch import MinHash

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


def minhash_signatures(texts: Sequence[str], num_perm: int = NUM_PERM) -> tuple[np.ndarray, np.ndarray]:
    """(signatures, usable): one uint32 MinHash row per text (datasketch), and which texts had tokens.

    Texts without any token get an all-zero row and usable=False: their "empty" MinHash would
    collide with every other empty one. The values fit 32 bits (datasketch masks them so).
    """
    shingle_sets = [shingles(t or "") for t in texts]
    usable = np.array([bool(s) for s in shingle_sets], dtype=bool)
    sigs = np.zeros((len(texts), num_perm), dtype=np.uint32)
    # crc32 (C, stable across processes) instead of datasketch's default sha1: ~5x faster per
    # shingle, and the random permutations on top make its weak mixing irrelevant here.
    minhashes = MinHash.bulk((s for s in shingle_sets if s), num_perm=num_perm, hashfunc=zlib.crc32)
    if minhashes:
        sigs[usable] = np.stack([m.hashvalues for m in minhashes]).astype(np.uint32)
    return sigs, usable


class MinHashIndex:
    """An incremental near-duplicate index: add signatures chunk by chunk, then cluster once.

    LSH banding as datasketch's MinHashLSH does it (bands of ROWS_PER_BAND rows), but held in
    numpy arrays: MinHashLSH keeps a Python dict entry and set per band per document (~13 KB per
    document at 36 bands), which puts 1M issues far past a few GiB; here it is the signature
    (1 KiB) plus 8 bytes per band.
    """

    def __init__(self, threshold: float = THRESHOLD, num_perm: int = NUM_PERM, rows_per_band: int = ROWS_PER_BAND):
        self.threshold, self.num_perm, self.rows = threshold, num_perm, rows_per_band
        self.bands = num_perm // rows_per_band
        self._ids: list[Hashable] = []
        self._sigs: list[np.ndarray] = []

    def add(self, ids: Sequence[Hashable], signatures: np.ndarray, usable: np.ndarray | None = None) -> None:
        if len(ids) != len(signatures):
            raise ValueError(f"ids and signatures differ in length ({len(ids)} != {len(signatures)})")
        keep = np.ones(len(ids), dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
        self._ids.extend(i for i, k in zip(ids, keep) if k)
        self._sigs.append(np.asarray(signatures, dtype=np.uint32)[keep])

    def pairs(self) -> set[tuple[int, int]]:
        """Index pairs (i < j) that share a band and whose estimated Jaccard reaches the threshold."""
        if len(self._ids) < 2:
            return set()
        sigs = np.concatenate(self._sigs)
        confirmed: set[tuple[int, int]] = set()
        checked: set[tuple[int, int]] = set()
        for b in range(self.bands):
            band = np.ascontiguousarray(sigs[:, b * self.rows : (b + 1) * self.rows])
            keys = band.view(np.dtype((np.void, band.dtype.itemsize * self.rows))).ravel()
            _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            if counts.max() < 2:
                continue
            order = np.argsort(inverse, kind="stable")
            starts = np.cumsum(counts) - counts
            for g in np.flatnonzero(counts >= 2):  # only buckets that hold a pair
                group = order[starts[g] : starts[g] + counts[g]]
                # All pairs in a bucket; a huge bucket (boilerplate) compares neighbours only.
                for x, i in enumerate(group):
                    for j in group[x + 1 : x + 1 + 64]:
                        pair = (int(min(i, j)), int(max(i, j)))
                        if pair in checked:
                            continue
                        checked.add(pair)
                        # LSH candidates are probable, not certain: confirm with the Jaccard estimate.
                        if np.mean(sigs[pair[0]] == sigs[pair[1]]) >= self.threshold:
                            confirmed.add(pair)
        return confirmed

    def clusters(self, all_ids: Sequence[str], id_of: Mapping[Any, str] | None = None) -> dict[str, str]:
        """Map each of `all_ids` (indexed or not) to its cluster id: the smallest id of its component.

        `id_of` maps the keys given to `add` to ids; indexed keys it leaves out take no part (e.g. an
        older version of an issue, indexed before the newer one turned up in a later chunk).
        """
        uf = _UnionFind(all_ids)
        for i, j in self.pairs():
            a, b = self._ids[i], self._ids[j]
            if id_of is not None:
                if a not in id_of or b not in id_of:
                    continue
                a, b = id_of[a], id_of[b]
            uf.union(cast(str, a), cast(str, b))
        return {x: uf.find(x) for x in all_ids}


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
    index = MinHashIndex(threshold=threshold, num_perm=num_perm)
    if ids:
        index.add(ids, *minhash_signatures(texts, num_perm))
    return index.clusters(ids)


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
