"""Near-duplicate clustering with MinHash LSH (datasketch).

The same issue is often filed twice, mirrored between GitHub and Gitee, or copied across forks;
keeping every copy would over-weight it and leak it across train/test splits. Texts are shingled
into 5-word n-grams and MinHashed (256 permutations); LSH banding proposes candidate pairs, each pair is confirmed by its estimated Jaccard similarity (>= 0.7), and connected components
of confirmed pairs form the clusters. The index is incremental, so a stream of chunks shares one.

Signatures come from rensa (Rust): one call MinHashes a whole chunk from a flat buffer of shingle
hashes built with numpy. datasketch's per-document MinHash was the largest single cost of cleaning
(~120 us per issue against ~5 here); it stays the reference the tests check rensa's Jaccard
estimates against.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Mapping, Sequence, cast

import numpy as np
import pandas as pd
import rensa

NUM_PERM = 256
SHINGLE_WORDS = 5
THRESHOLD = 0.7
# LSH bands of 7 rows (36 bands at 256 permutations): a pair at Jaccard 0.7 becomes a candidate with
# probability ~0.95, at 0.8 ~1.0, at 0.4 ~0.06. datasketch's default balance would find only half
# of the pairs at the threshold; the extra candidates are cheap because each one is confirmed below.
ROWS_PER_BAND = 7
SEED = 1  # fixes rensa's permutations: signatures (and so clusters and splits) are reproducible
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio) for combining token hashes

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
    """Items join on first use: only ids in some near-duplicate pair ever take memory."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
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


def shingle_hashes(texts: Sequence[str], k: int = SHINGLE_WORDS) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, counts): 64-bit hashes of each text's `shingles`, flat, and how many per text.

    The same k-grams as `shingles` (repeats included; a MinHash ignores them), built for a whole
    batch at once: tokens are hashed by pandas (SipHash, stable across processes) and each k-gram's
    hash combines its k token hashes in order, without joining any strings.
    """
    tokens: list[str] = []
    lens = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        found = _TOKEN.findall(text.lower()) if text else []
        tokens.extend(found)
        lens[i] = len(found)
    if not tokens:
        return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
    token_hashes = pd.util.hash_array(np.array(tokens, dtype=object))
    n = len(token_hashes)
    lens_per_token = np.repeat(lens, lens)
    left = lens_per_token - (np.arange(n) - np.repeat(np.cumsum(lens) - lens, lens))  # tokens from here to the end
    combined = token_hashes.copy()
    with np.errstate(over="ignore"):  # multiplication wraps modulo 2**64 on purpose
        for j in range(1, k):
            following = np.zeros(n, dtype=np.uint64)
            if j < n:  # a batch of fewer than k tokens has no following token at all
                following[: n - j] = token_hashes[j:]
            following[left <= j] = 0  # past the end of this text
            combined = (combined * _MIX) ^ following
    # A k-gram starts at every token with k-1 more after it; a text shorter than k is one shingle.
    starts = (left >= k) | ((left == lens_per_token) & (lens_per_token < k))
    counts = np.where(lens >= k, lens - k + 1, np.minimum(lens, 1))
    return combined[starts], counts


def minhash_signatures(texts: Sequence[str], num_perm: int = NUM_PERM) -> tuple[np.ndarray, np.ndarray]:
    """(signatures, usable): one uint32 MinHash row per text, and which texts had tokens.

    Texts without any token get an all-zero row and usable=False: their "empty" MinHash would
    collide with every other empty one.
    """
    hashes, counts = shingle_hashes(texts)
    usable = counts > 0
    sigs = np.zeros((len(texts), num_perm), dtype=np.uint32)
    if usable.any():
        offsets = np.concatenate([[0], np.cumsum(counts[usable])]).astype(np.uint64)
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, num_perm, SEED)
        sigs[usable] = np.array(matrix.to_rows(), dtype=np.uint32)
    return sigs, usable


class MinHashIndex:
    """An incremental near-duplicate index: add signatures chunk by chunk, then cluster once.

    LSH banding as datasketch's MinHashLSH does it (bands of ROWS_PER_BAND rows), but held in
    numpy arrays: MinHashLSH keeps a Python dict entry and set per band per document (~13 KB per
    document at 36 bands), which puts 1M issues far past a few GiB. Here a document costs one
    64-bit hash per band (288 bytes), computed as it is added, plus its signature (1 KiB), which
    only the candidate pairs' confirmation reads: with `spill_path` the signatures go to that file
    as they come and only candidates' rows are read back, so they take no resident memory.
    """

    def __init__(
        self,
        threshold: float = THRESHOLD,
        num_perm: int = NUM_PERM,
        rows_per_band: int = ROWS_PER_BAND,
        spill_path: Path | None = None,
    ):
        self.threshold, self.num_perm, self.rows = threshold, num_perm, rows_per_band
        self.bands = num_perm // rows_per_band
        self._ids: list[Hashable] = []
        self._band_keys: list[np.ndarray] = []  # per chunk: (rows, bands) uint64
        self._sigs: list[np.ndarray] = []  # per chunk, when not spilled
        self._spill = Path(spill_path) if spill_path is not None else None
        if self._spill is not None:
            self._spill.parent.mkdir(parents=True, exist_ok=True)
            self._spill.write_bytes(b"")

    def add(self, ids: Sequence[Hashable], signatures: np.ndarray, usable: np.ndarray | None = None) -> None:
        if len(ids) != len(signatures):
            raise ValueError(f"ids and signatures differ in length ({len(ids)} != {len(signatures)})")
        keep = np.ones(len(ids), dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
        sigs = np.ascontiguousarray(np.asarray(signatures, dtype=np.uint32)[keep])
        if sigs.ndim != 2 or sigs.shape[1] != self.num_perm:
            raise ValueError(f"signatures must be (n, {self.num_perm}), got {sigs.shape}")
        self._ids.extend(i for i, k in zip(ids, keep) if k)
        self._band_keys.append(self._hash_bands(sigs))
        if self._spill is not None:
            with self._spill.open("ab") as f:
                f.write(sigs.tobytes())
        else:
            self._sigs.append(sigs)

    def _hash_bands(self, sigs: np.ndarray) -> np.ndarray:
        """One 64-bit hash per band of each signature. Two documents share a band's hash when they
        share its values (or, rarely, by collision: that only adds a candidate, confirmed below)."""
        bands = sigs[:, : self.bands * self.rows].reshape(len(sigs), self.bands, self.rows).astype(np.uint64)
        keys = np.zeros((len(sigs), self.bands), dtype=np.uint64)
        with np.errstate(over="ignore"):  # wraps modulo 2**64 on purpose
            for r in range(self.rows):
                keys = (keys ^ bands[:, :, r]) * _MIX
        return keys

    @contextmanager
    def _signature_rows(self) -> Iterator[Callable[[int], np.ndarray]]:
        """A function giving the signature of indexed document i. Spilled signatures are read
        with pread, row by row: a memory map would count every page it touched as resident, up to
        the whole file (~1 GiB at 1M issues), though only candidate pairs' rows are wanted."""
        if self._spill is None:
            sigs = np.concatenate(self._sigs) if self._sigs else np.zeros((0, self.num_perm), dtype=np.uint32)
            yield sigs.__getitem__
            return
        row_bytes = self.num_perm * 4
        fd = os.open(self._spill, os.O_RDONLY)
        try:
            yield lambda i: np.frombuffer(os.pread(fd, row_bytes, int(i) * row_bytes), dtype=np.uint32)
        finally:
            os.close(fd)

    def pairs(self) -> set[tuple[int, int]]:
        """Index pairs (i < j) that share a band and whose estimated Jaccard reaches the threshold."""
        n = len(self._ids)
        if n < 2:
            return set()
        with self._signature_rows() as row:
            return self._confirmed_pairs(row, n)

    def _confirmed_pairs(self, row: Callable[[int], np.ndarray], n: int) -> set[tuple[int, int]]:
        confirmed: set[tuple[int, int]] = set()
        checked: set[int] = set()  # pairs as lo * n + hi: one int each, not a tuple of two
        for b in range(self.bands):
            keys = np.concatenate([k[:, b] for k in self._band_keys])
            order = np.argsort(keys, kind="stable")
            ordered = keys[order]
            starts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
            sizes = np.diff(np.append(starts, n))
            for g in np.flatnonzero(sizes >= 2):  # only buckets that hold a pair
                group = order[starts[g] : starts[g] + sizes[g]]
                # All pairs in a bucket; a huge bucket (boilerplate) compares neighbours only.
                for x, i in enumerate(group):
                    for j in group[x + 1 : x + 1 + 64]:
                        pair = (int(min(i, j)), int(max(i, j)))
                        code = pair[0] * n + pair[1]
                        if code in checked:
                            continue
                        checked.add(code)
                        # LSH candidates are probable, not certain: confirm with the Jaccard estimate.
                        if np.mean(row(pair[0]) == row(pair[1])) >= self.threshold:
                            confirmed.add(pair)
        return confirmed

    def clusters(self, all_ids: Sequence[str], id_of: Mapping[Any, str] | None = None) -> dict[str, str]:
        """Map each of `all_ids` (indexed or not) to its cluster id: the smallest id of its component.

        `id_of` maps the keys given to `add` to ids; indexed keys it leaves out take no part (e.g. an
        older version of an issue, indexed before the newer one turned up in a later chunk).
        """
        roots = self.cluster_roots(id_of)
        return {x: roots.get(x, x) for x in all_ids}

    def cluster_roots(self, id_of: Mapping[Any, str] | None = None) -> dict[str, str]:
        """Cluster ids of the ids that have a near-duplicate; every other id is its own cluster.

        The sparse form of `clusters`, for large streams: near-duplicates are a few percent of ids.
        """
        uf = _UnionFind()
        for i, j in self.pairs():
            a, b = self._ids[i], self._ids[j]
            if id_of is not None:
                if a not in id_of or b not in id_of:
                    continue
                a, b = id_of[a], id_of[b]
            uf.union(cast(str, a), cast(str, b))
        return {x: uf.find(x) for x in list(uf.parent)}


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
