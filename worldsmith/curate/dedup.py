"""Deduplication stage: exact / near-exact copies by perceptual hash, then semantic duplicates by SemDeDup.

* ``clip_signature`` (per clip, in the worker that already decoded it): a DCT perceptual hash of each of a few
  frames sampled at fixed relative positions, and one clip embedding: the L2-normalised mean of the pooled
  EfficientNet-lite0 features (``worldsmith.eval.features``) of the same frames, resized to a fixed square (so a
  resized copy gives the same input) and blurred (so grain and compression do not count).
* ``deduplicate`` (global, over every kept record):
  1. pHash: two clips whose hashes are within ``phash_hamming`` bits (mean over sampled frames of the distance to
     the closest frame of the other clip, the larger of both directions) are copies; connected groups of copies
     keep one clip (the keep policy picks it).
  2. SemDeDup (Abbas et al. 2023, arXiv 2303.09540, Section 3): spherical k-means on the unit embeddings (faiss),
     ``k = min(n_clusters, n // min_cluster_size)``; inside each cluster the members are ordered by the keep
     policy and a member is removed when its cosine similarity to any member ranked before it exceeds
     ``1 - eps`` (the paper's ``max(triu(S)) > 1 - eps`` rule, its Algorithm 1).

Keep policies (best first): ``longest`` (most frames), ``sharpest`` (``rec.scores["sharpness"]``), ``first``
(smallest key), ``centroid_far`` (farthest from its cluster centroid, the paper's choice; the pHash step, which
has no centroid, falls back to ``first``). Ties break by key. Records are processed in key order, so the result
does not depend on the order they are passed in.

The 64-bit hashes are stored as signed int64 values (two's complement), so Arrow/Parquet keep them as int64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch

from worldsmith.curate.record import ClipRecord
from worldsmith.errors import ConfigError
from worldsmith.eval.features import frame_features
from worldsmith.io.video import to_tensor

KEEP_POLICIES = ("longest", "sharpest", "first", "centroid_far")


@dataclass
class DedupConfig:
    enabled: bool = True
    phash: bool = True  # step 1: perceptual-hash copies
    phash_hamming: int = 10  # max mean Hamming distance (of 64 bits) between the frames of two copies
    semantic: bool = True  # step 2: SemDeDup
    eps: float = 0.07  # SemDeDup: cosine similarity above 1 - eps is a duplicate
    n_clusters: int = 100  # SemDeDup: k-means clusters at most ...
    min_cluster_size: int = 10  # ... and at least this many clips per cluster on average
    kmeans_iters: int = 20
    seed: int = 0
    keep: Literal["longest", "sharpest", "first", "centroid_far"] = "longest"
    frames: int = 4  # frames sampled per clip for the signature
    embed_size: int = 128  # frames are resized to embed_size x embed_size for EfficientNet-lite0 ...
    embed_blur: float = 4.0  # ... and blurred (Gaussian sigma, pixels): features of the content, not of its grain

    def __post_init__(self) -> None:
        if self.keep not in KEEP_POLICIES:
            raise ConfigError(f"dedup.keep must be one of {', '.join(KEEP_POLICIES)}, got {self.keep!r}.")
        if not 0 <= self.eps < 1 or self.frames < 1 or not 0 <= self.phash_hamming <= 64:
            raise ConfigError("dedup needs 0 <= eps < 1, frames >= 1 and 0 <= phash_hamming <= 64.")


# ---------------------------------------------------------------------------------------------------- signature
def sample_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` frame indices at the centres of equal parts of the clip (fixed relative positions)."""
    return np.minimum(((np.arange(count) + 0.5) * num_frames / count).astype(np.int64), num_frames - 1)


def phash(frame: np.ndarray) -> int:
    """64-bit DCT perceptual hash of a uint8 (H, W, 3) frame, as a signed int64 value.

    Grey, area-resized to 32x32, 2-D DCT-II; the 8x8 lowest frequencies each give one bit: above their median.
    """
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8]  # (8, 8) lowest frequencies
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">i8")[0])


def clip_signature(frames: np.ndarray, cfg: DedupConfig) -> tuple[list[int], list[float]]:
    """(pHashes of ``cfg.frames`` sampled frames, unit-norm 1280-d clip embedding) of uint8 (T, H, W, 3) frames."""
    if not (isinstance(frames, np.ndarray) and frames.ndim == 4 and frames.shape[-1] == 3 and len(frames)):
        got = getattr(frames, "shape", frames)
        raise ValueError(f"clip_signature needs uint8 (T, H, W, 3) frames with T >= 1, got {got}")
    picked = frames[sample_indices(len(frames), cfg.frames)]  # (K, H, W, 3)
    hashes = [phash(f) for f in picked]
    resized = np.stack([_embed_input(f, cfg) for f in picked])  # (K, S, S, 3)
    x = to_tensor(resized).permute(1, 0, 2, 3)  # (3, K, S, S) -> (K, 3, S, S)
    with torch.inference_mode():
        feats = frame_features(x)  # (K, 1280) float64
    mean = feats.mean(0)
    embedding = (mean / mean.norm().clamp_min(1e-12)).tolist()
    return hashes, embedding


def _embed_input(frame: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """uint8 (S, S, 3): resized to a fixed square and blurred. Without the blur, sensor noise and compression
    artefacts move the features of a re-encoded copy about as far as those of another scene (cosine ~0.8)."""
    shrink = cfg.embed_size <= min(frame.shape[:2])
    out = cv2.resize(frame, (cfg.embed_size,) * 2, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.GaussianBlur(out, (0, 0), cfg.embed_blur) if cfg.embed_blur > 0 else out


# ---------------------------------------------------------------------------------------------------- policies
def _priority(rec: ClipRecord, policy: str, far: float = 0.0) -> tuple:
    """Sort key: smaller = kept first. ``far`` is the distance to the cluster centroid (centroid_far)."""
    if policy == "longest":
        return (-rec.num_frames, rec.key)
    if policy == "sharpest":
        return (-float(rec.scores.get("sharpness", float("-inf"))), rec.key)
    if policy == "centroid_far":
        return (-far, rec.key)
    return (rec.key,)


def _hash_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Clip-to-clip pHash distances (Na, Nb) from hashes a (Na, K) and b (Nb, K) int64 (see the docstring)."""
    bits = np.bitwise_count(a[:, None, :, None] ^ b[None, :, None, :])  # (Na, Nb, K, K)
    return np.maximum(bits.min(3).mean(2), bits.min(2).mean(2))


# ---------------------------------------------------------------------------------------------------- the stage
def deduplicate(records: list[ClipRecord], cfg: DedupConfig) -> list[ClipRecord]:
    """Mark duplicates among the kept records dropped (``dropped_by="dedup"``); returns ``records``."""
    if not cfg.enabled:
        return records
    live = sorted((r for r in records if r.kept), key=lambda r: r.key)  # key order: independent of input order
    if cfg.phash:
        _phash_step([r for r in live if r.phash], cfg)
    if cfg.semantic:
        _semdedup_step([r for r in live if r.kept and r.embedding], cfg)
    return records


def _phash_step(recs: list[ClipRecord], cfg: DedupConfig, budget: int = 1 << 25) -> None:
    """Connected groups of pHash copies keep their best member."""
    if len(recs) < 2:
        return
    k = min(len(r.phash) for r in recs)
    hashes = np.array([r.phash[:k] for r in recs], np.int64)  # (N, K)
    parent = list(range(len(recs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    closest: dict[tuple[int, int], float] = {}
    chunk = max(1, budget // (len(recs) * k * k))  # rows per step: the (chunk, N, K, K) bit counts stay ~32 MB
    for lo in range(0, len(recs), chunk):
        dist = _hash_distances(hashes[lo : lo + chunk], hashes)
        for i, j in zip(*np.nonzero(dist <= cfg.phash_hamming)):
            a, b = lo + int(i), int(j)
            if a < b:
                closest[(a, b)] = float(dist[i, j])
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in range(len(recs)):
        groups.setdefault(root(i), []).append(i)
    policy = "first" if cfg.keep == "centroid_far" else cfg.keep
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: _priority(recs[i], policy))
        best = members[0]
        for i in members[1:]:
            d = closest.get((min(i, best), max(i, best)))
            how = f"pHash distance {d:.1f} <= {cfg.phash_hamming}" if d is not None else "pHash, via a chain of copies"
            recs[i].drop("dedup", f"near-duplicate of {recs[best].key} ({how})")


def _semdedup_step(recs: list[ClipRecord], cfg: DedupConfig) -> None:
    """SemDeDup: spherical k-means, then within each cluster drop members too similar to a better-ranked one."""
    import faiss

    if len(recs) < 2:
        return
    emb = np.array([r.embedding for r in recs], np.float32)  # (N, D)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
    # 1. clusters (a single cluster when there are few clips)
    k = max(1, min(cfg.n_clusters, len(recs) // max(1, cfg.min_cluster_size)))
    if k > 1:
        kmeans = faiss.Kmeans(
            emb.shape[1], k, niter=cfg.kmeans_iters, spherical=True, seed=cfg.seed, verbose=False,
            min_points_per_centroid=1,
        )  # fmt: skip
        kmeans.train(emb)
        centroids = kmeans.centroids / np.linalg.norm(kmeans.centroids, axis=1, keepdims=True).clip(1e-12)
        labels = (emb @ centroids.T).argmax(1)  # (N,) nearest centroid by cosine
    else:
        centroids = emb.mean(0, keepdims=True)
        centroids /= np.linalg.norm(centroids).clip(1e-12)
        labels = np.zeros(len(recs), np.int64)
    far = 1.0 - (emb * centroids[labels]).sum(1)  # (N,) cosine distance to own centroid
    # 2. per cluster: order by policy, remove a member similar to any member ranked before it
    for c in np.unique(labels):
        members = sorted(np.flatnonzero(labels == c), key=lambda i: _priority(recs[i], cfg.keep, far[i]))
        if len(members) < 2:
            continue
        sims = emb[members] @ emb[members].T  # (M, M) cosine similarities
        removed_by: dict[int, int] = {}
        for pos in range(1, len(members)):
            earlier = np.flatnonzero(sims[pos, :pos] > 1.0 - cfg.eps)
            if len(earlier):
                ref = int(earlier[0])
                while ref in removed_by:  # name a clip that is kept
                    ref = removed_by[ref]
                removed_by[pos] = ref
                sim = float(sims[pos, earlier[0]])
                why = f"SemDeDup cosine {sim:.3f} > {1 - cfg.eps:.3f}"
                recs[members[pos]].drop("dedup", f"near-duplicate of {recs[members[ref]].key} ({why})")
