"""The shard stage: kept clips -> bucketed WebDataset shards, and one Parquet manifest of every clip.

Buckets (so a training loader can batch clips of one shape): ``res_<H>/ar_<w>x<h>/frames_<lo>-<hi>/part-*.tar``
under OUT, where ``H`` is the largest listed resolution not above the clip height (the height itself below
the smallest), ``w x h`` the aspect ratio reduced to the nearest listed one (``4x3``, ``16x9`` ...; the exact
reduced ratio when none is within tolerance) and ``lo <= frames < hi`` the frame-count bucket (``hi`` = ``max``
past the last edge). Each bucket is a worldsmith shard directory (``ShardWriter``: atomic shards, its own
``manifest.parquet``, resumable). A clip's mp4 is its split clip file stored as it is when that file is H.264 with
square pixels, no rotation and exactly the clip's frames (the usual case: no second encode, no second loss; a
stream-copied clip keeps the source's own bitstream); otherwise its frames are encoded (libx264, ``crf``). A clip
carries its caption, ``meta`` (source, span, scores, tags) and, when it
was cut from a clip of a shard input, that clip's arrays cropped to the span (per-frame / per-transition rule of
``worldsmith.data.clip``).

``OUT/manifest.parquet`` (written atomically, last) lists every clip, kept and dropped: key, source span, size,
caption, tags, one ``score_<name>`` column per score, bucket, shard (empty when dropped), dropped_by and reason.
Exactly-once: a rerun opens each bucket's writer (which drops temp files of a killed run and indexes complete
shards its manifest misses) and writes only the keys the bucket does not hold yet.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from worldsmith.atomic import atomic_open
from worldsmith.curate.record import ClipRecord
from worldsmith.data.clip import Clip
from worldsmith.data.manifest import read_manifest_rows
from worldsmith.data.shard_writer import ShardWriter
from worldsmith.data.shards import iter_samples, load_array
from worldsmith.errors import ConfigError, DataError
from worldsmith.io.video import VideoInfo, decode, iter_frames, probe

MANIFEST = "manifest.parquet"


@dataclass
class ShardConfig:
    resolutions: tuple[int, ...] = (120, 144, 180, 240, 360, 480, 540, 720, 1080, 1440, 2160)  # res_<H> buckets
    aspect_ratios: tuple[str, ...] = ("1x1", "5x4", "4x3", "3x2", "16x9", "21x9", "4x5", "3x4", "2x3", "9x16")
    aspect_tolerance: float = 0.04  # relative distance to a listed ratio that still counts as that ratio
    frame_edges: tuple[int, ...] = (1, 32, 64, 128, 256, 512, 1024, 2048)  # frames_<lo>-<hi> buckets
    max_clips_per_shard: int = 256
    max_bytes: int = 1 << 30
    crf: int = 18  # H.264 quality of clips the shards encode (those whose split clip cannot be stored as it is)
    reuse_clip_mp4: bool = True  # store the split's H.264 clip file as it is (no second encode) where it fits
    in_memory_mb: int = 512  # a clip whose frames take more is staged in a memory-mapped temp file (bounded RAM)

    def __post_init__(self) -> None:
        if list(self.frame_edges) != sorted(set(self.frame_edges)) or not self.frame_edges:
            raise ConfigError(f"shard.frame_edges must be increasing, got {list(self.frame_edges)}.")
        for r in self.aspect_ratios:
            w, _, h = r.partition("x")
            if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
                raise ConfigError(f"shard.aspect_ratios entry {r!r} must look like 16x9.")


def aspect_bucket(width: int, height: int, cfg: ShardConfig) -> str:
    """``16x9``-style name: the nearest listed ratio within tolerance, else the exact ratio reduced by the gcd."""
    ratio = width / height
    best, best_err = "", math.inf
    for name in cfg.aspect_ratios:
        w, h = map(int, name.split("x"))
        err = abs(math.log(ratio / (w / h)))
        if err < best_err:
            best, best_err = name, err
    if best_err <= math.log1p(cfg.aspect_tolerance):
        return best
    g = math.gcd(width, height)
    return f"{width // g}x{height // g}"


def bucket_of(rec: ClipRecord, cfg: ShardConfig) -> str:
    """``res_<H>/ar_<w>x<h>/frames_<lo>-<hi>`` of a clip."""
    below = [r for r in cfg.resolutions if r <= rec.height]
    res = max(below) if below else rec.height
    n, edges = rec.num_frames, list(cfg.frame_edges)
    lo = max([e for e in edges if e <= n], default=0)
    higher = [e for e in edges if e > n]
    hi = str(higher[0]) if higher else "max"
    return f"res_{res}/ar_{aspect_bucket(rec.width, rec.height, cfg)}/frames_{lo}-{hi}"


def clip_meta(rec: ClipRecord) -> dict[str, Any]:
    """The ``meta`` a clip carries into its shard: where it came from and what the stages measured."""
    meta = {"source": rec.source, "start_frame": rec.start_frame, "end_frame": rec.end_frame,
            "start_s": rec.start_s, "end_s": rec.end_s, "shot": rec.shot, "caption_source": rec.caption_source,
            "scores": dict(rec.scores), "tags": dict(rec.tags)}  # fmt: skip
    extra = {k: v for k, v in rec.meta.items() if k not in meta}
    if extra:
        meta["curate"] = extra
    return meta


class _SourceArrays:
    """Arrays of the shard clips the records were cut from, loaded once per source clip."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]] = {}

    def get(self, rec: ClipRecord) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        shard, key = rec.meta.get("source_shard"), rec.meta.get("source_key")
        if not shard or not key:
            return {}, {}
        if rec.source not in self._cache:
            arrays, meta = {}, {}
            for sample in iter_samples(shard, strict=False, read=lambda ext: ext.endswith(".npy")):
                if sample["__key__"] == key:
                    arrays = {n: load_array(sample, n) for n in sample["__header__"]["arrays"]}
                    meta = dict(sample["__header__"].get("meta", {}))
                    break
            if len(self._cache) >= 16:  # bounded: clips of one source mostly arrive together
                self._cache.pop(next(iter(self._cache)))
            self._cache[rec.source] = (arrays, meta)
        return self._cache[rec.source]


def _crop_arrays(arrays: dict[str, np.ndarray], source_frames: int, start: int, t: int) -> dict[str, np.ndarray]:
    """Frames [start, start + t) of per-frame arrays, transitions [start, start + t - 1) of per-transition ones."""
    out = {}
    for name, arr in arrays.items():
        n = t - 1 if arr.shape[0] == source_frames - 1 else t
        if start + n <= arr.shape[0] and n >= 0:
            out[name] = arr[start : start + n]
    return out


def _decode_frames(rec: ClipRecord, cfg: ShardConfig, stage: Path, info: VideoInfo) -> np.ndarray:
    """The clip's frames uint8 (T, H, W, 3) (``info``: its file's probe); a long or large clip goes through a
    memory-mapped file in ``stage`` (frames are decoded one at a time into it and the encoder reads them back one
    at a time, so RAM stays bounded)."""
    capacity = max(info.num_frames, rec.num_frames) + 8  # slack: a container's frame count can be approximate
    if capacity * info.height * info.width * 3 <= cfg.in_memory_mb * 2**20:
        return decode(rec.path)[:, : rec.height, : rec.width]  # encoders pad odd sizes: cut back to the clip's
    stage.mkdir(parents=True, exist_ok=True)
    path = stage / f"{rec.key}.frames"
    frames = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                       shape=(capacity, rec.height, rec.width, 3))  # fmt: skip
    path.unlink()  # the mapping stays valid; nothing is left behind if the run is killed
    n = 0
    for n, frame in enumerate(iter_frames(rec.path), 1):
        if n > capacity:
            raise DataError(f"clip {rec.path} decodes to more than the {capacity} frames it announces; re-run "
                            "the split (delete it from OUT/.work/clips).")  # fmt: skip
        frames[n - 1] = frame[: rec.height, : rec.width]
    return frames[:n]


def _reusable_mp4(rec: ClipRecord, frames: np.ndarray, info: VideoInfo) -> bytes | None:
    """The clip file's bytes when the shard can store them as they are: H.264, square pixels, no rotation, and
    they decode to exactly the clip's frames (even size, count as recorded); else None (the frames are encoded)."""
    exact = frames.shape[1:3] == (info.height, info.width) == (rec.height, rec.width)
    if info.codec != "h264" or info.rotation or info.sample_aspect != 1.0 or not exact:
        return None
    if frames.shape[0] != rec.num_frames:
        return None
    return Path(rec.path).read_bytes()


def _to_clip(rec: ClipRecord, arrays_of: _SourceArrays, cfg: ShardConfig, stage: Path) -> tuple[Clip, bytes | None]:
    """The clip to store and, when they can be stored as they are, its file's mp4 bytes (``_reusable_mp4``)."""
    info = probe(rec.path)
    frames = _decode_frames(rec, cfg, stage, info)  # (T, H, W, 3)
    arrays, source_meta = arrays_of.get(rec)
    meta = clip_meta(rec)
    if source_meta:
        meta["source_meta"] = source_meta
    frames_in_source = int(source_meta.get("num_frames", 0)) or max((a.shape[0] for a in arrays.values()), default=0)
    cropped = _crop_arrays(arrays, frames_in_source, rec.start_frame, frames.shape[0]) if arrays else {}
    clip = Clip(key=rec.key, frames=frames, fps=rec.fps, caption=rec.caption, meta=meta, arrays=cropped)
    return clip, (_reusable_mp4(rec, frames, info) if cfg.reuse_clip_mp4 else None)


def write_shards(records: list[ClipRecord], out_dir: str | os.PathLike, cfg: ShardConfig, *,
                 progress: bool = False) -> dict[str, str]:  # fmt: skip
    """Write the kept clips into bucket shards (skipping keys already there) and ``OUT/manifest.parquet``.

    Returns ``{key: shard path relative to out_dir}`` for every kept clip.
    """
    out = Path(out_dir)
    by_bucket: dict[str, list[ClipRecord]] = defaultdict(list)
    for rec in records:
        if rec.kept:
            by_bucket[bucket_of(rec, cfg)].append(rec)
    shard_of: dict[str, str] = {}
    arrays_of = _SourceArrays()
    bar = tqdm(total=sum(map(len, by_bucket.values())), desc="shards ", unit="clip", disable=not progress)
    for bucket, recs in sorted(by_bucket.items()):
        directory = out / bucket
        # 1. opening the writer cleans a killed run's temp files and indexes complete shards into its manifest
        with ShardWriter(directory, max_clips_per_shard=cfg.max_clips_per_shard, max_bytes=cfg.max_bytes,
                         crf=cfg.crf) as writer:  # fmt: skip
            have = {r["key"] for r in read_manifest_rows(directory)} if (directory / MANIFEST).exists() else set()
            # 2. only the keys this bucket does not hold yet
            for rec in recs:
                if rec.key not in have:
                    clip, mp4 = _to_clip(rec, arrays_of, cfg, out / ".work" / "stage")
                    writer.write(clip, mp4=mp4)
                bar.update(1)
        for row in read_manifest_rows(directory):
            shard_of[row["key"]] = f"{bucket}/{row['shard']}"
    bar.close()
    write_manifest(records, out / MANIFEST, shard_of, cfg)
    return {r.key: shard_of[r.key] for r in records if r.kept and r.key in shard_of}


def manifest_table(records: list[ClipRecord], shard_of: dict[str, str], cfg: ShardConfig) -> pa.Table:
    """The Parquet table of every clip (see the module docstring for the columns)."""
    score_names = sorted({k for r in records for k in r.scores})
    tag_names = sorted({k for r in records for k in r.tags})
    cols: dict[str, Any] = {
        "key": pa.array([r.key for r in records], pa.string()),
        "kept": pa.array([r.kept for r in records], pa.bool_()),
        "dropped_by": pa.array([r.dropped_by for r in records], pa.string()),
        "reason": pa.array([r.reason for r in records], pa.string()),
        "source": pa.array([r.source for r in records], pa.string()),
        "shot": pa.array([r.shot for r in records], pa.int64()),
        "start_frame": pa.array([r.start_frame for r in records], pa.int64()),
        "end_frame": pa.array([r.end_frame for r in records], pa.int64()),
        "start_s": pa.array([r.start_s for r in records], pa.float64()),
        "end_s": pa.array([r.end_s for r in records], pa.float64()),
        "num_frames": pa.array([r.num_frames for r in records], pa.int64()),
        "duration": pa.array([r.duration for r in records], pa.float64()),
        "fps": pa.array([r.fps for r in records], pa.float64()),
        "width": pa.array([r.width for r in records], pa.int64()),
        "height": pa.array([r.height for r in records], pa.int64()),
        "caption": pa.array([r.caption for r in records], pa.string()),
        "caption_source": pa.array([r.caption_source for r in records], pa.string()),
        "tags": pa.array([json.dumps(r.tags, sort_keys=True, default=str) for r in records], pa.string()),
        "bucket": pa.array([bucket_of(r, cfg) if r.kept else "" for r in records], pa.string()),
        "shard": pa.array([shard_of.get(r.key, "") if r.kept else "" for r in records], pa.string()),
        "clip_path": pa.array([r.path for r in records], pa.string()),
    }
    for name in score_names:
        vals = [r.scores.get(name) for r in records]
        cols[f"score_{name}"] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
    for name in tag_names:
        vals = [r.tags.get(name) for r in records]
        cols[f"tag_{name}"] = pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v)
                                        for v in vals], pa.string())  # fmt: skip
    return pa.table(cols)


def write_manifest(records: list[ClipRecord], path: Path, shard_of: dict[str, str], cfg: ShardConfig) -> Path:
    with atomic_open(path, "wb") as f:
        pq.write_table(manifest_table(records, shard_of, cfg), f)
    return path
