"""The two units of per-item work both engines run: split one source, process one clip.

They are plain picklable functions of plain data (a ``Source`` or a ``ClipRecord`` plus dataclass configs), so
the local engine sends them to spawned worker processes and the Ray engine to Ray tasks unchanged. Each returns
what the driver journals; user-caused failures (an unreadable source or clip) come back as data, not exceptions.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import cv2
import torch

from worldsmith.atomic import atomic_write_bytes
from worldsmith.curate.dedup import DedupConfig
from worldsmith.curate.process import AnnotateConfig, FilterConfig, process_clip
from worldsmith.curate.record import ClipRecord, clip_key
from worldsmith.curate.sources import Source
from worldsmith.curate.segments import SegmentedSplit, context_range, cut_signals, plan_segments
from worldsmith.curate.split import SplitConfig, detector_signals, detector_size, indexed_count, split_source
from worldsmith.data.shards import iter_samples
from worldsmith.errors import DataError, VideoError, WorldsmithError
from worldsmith.io.video import decode, probe

_THREADS_SET = False


def one_thread() -> None:
    """One intra-op thread per worker process: the engines parallelise over processes, not inside them."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _THREADS_SET = True


def _extract_shard_clip(src: Source, dest_dir: Path) -> Path:
    """Write the main-view mp4 of clip ``src.key`` of shard ``src.shard`` to a file (atomically)."""
    for sample in iter_samples(src.shard, strict=False, read=lambda ext: ext == "mp4"):
        if sample["__key__"] == src.key:
            dest = dest_dir / (hashlib.sha1(src.id.encode()).hexdigest()[:16] + ".mp4")
            atomic_write_bytes(dest, sample["mp4"])
            return dest
    raise VideoError(f"clip {src.key} is no longer readable in shard {src.shard}.")


def _rekey(rec: ClipRecord, src: Source, clips_dir: Path) -> ClipRecord:
    """Give a clip cut from a shard clip a key and source that name the shard clip, and carry its caption."""
    rec.source = src.id
    new_key = clip_key(src.id, rec.start_frame, rec.end_frame)
    if rec.path:
        new_path = clips_dir / f"{new_key}.mp4"
        os.replace(rec.path, new_path)
        rec.path = str(new_path)
    rec.key = new_key
    rec.meta.update({"source_shard": src.shard, "source_key": src.key})
    if src.caption:
        rec.caption, rec.caption_source = src.caption, "source"
    return rec


def split_task(src: Source, split_cfg: SplitConfig, work_dir: str, shots: tuple[list, int] | None = None,
               own: tuple[int, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """Split one source into clips under ``work_dir/clips``.

    Returns ``{"id", "records", "info", "bad", "seconds", "cpu_seconds"}`` (wall and CPU time of the task); ``bad``
    is the one-sentence reason when the source cannot be read (then ``records`` is empty). ``shots`` and ``own``:
    the write step of a source split in segments (``curate/segments.py``), which cuts only the clips starting in
    frames ``own``.
    """
    one_thread()
    started, cpu = time.perf_counter(), time.process_time()
    work = Path(work_dir)
    clips_dir = work / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    extracted = None
    try:
        path = src.path
        if src.shard:
            extracted = path = str(_extract_shard_clip(src, work / "sources"))
        info = probe(path)
        if info.is_image:
            raise VideoError(f"{src.path or src.id} is a still image, not a video.")
        records = split_source(path, split_cfg, clips_dir, shots=shots, own=own)
        if src.shard:
            records = [_rekey(r, src, clips_dir) for r in records]
        meta = {"duration": float(info.duration), "fps": float(info.fps), "width": info.width,
                "height": info.height, "frames": int(info.num_frames)}  # fmt: skip
        return {"id": src.id, "records": records, "info": meta, "bad": "", "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu}
    except (VideoError, DataError) as e:
        return {"id": src.id, "records": [], "info": {}, "bad": str(e), "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu}
    finally:
        if extracted is not None and os.path.exists(extracted):
            os.unlink(extracted)


def process_task(rec: ClipRecord, filters: FilterConfig, annotate: AnnotateConfig,
                 dedup: DedupConfig) -> tuple[ClipRecord, tuple[float, float]]:  # fmt: skip
    """Filter, annotate and sign one clip (``process.process_clip``); a clip that cannot be read is dropped.
    Returns the record and (wall, CPU) seconds of the task."""
    one_thread()
    started, cpu = time.perf_counter(), time.process_time()
    if rec.kept:
        try:
            rec = process_clip(rec, filters, annotate, dedup)
        except WorldsmithError as e:
            rec.drop("process", f"the clip could not be processed: {e}")
    return rec, (time.perf_counter() - started, time.process_time() - cpu)


def detect_task(src: Source, split_cfg: SplitConfig, a: int, b: int, n: int) -> dict[str, Any]:
    """The detector's per-frame outputs of frames ``[a, b)`` of a source of ``n`` frames (``curate/segments.py``).

    Returns ``{"signals", "seconds", "cpu_seconds"}``; ``signals`` is None when the segment does not decode to the
    frames expected (the driver then splits the source in one task, which reports what is wrong with it)."""
    one_thread()
    started, cpu = time.perf_counter(), time.process_time()
    signals = None
    try:
        info = probe(src.path)
        lo, hi = context_range(a, b, n, split_cfg, info.fps)
        frames = decode(src.path, start=lo, end=hi if b < n else None, size=detector_size(split_cfg, info))
        if len(frames) == hi - lo:
            raw = detector_signals(iter(frames), split_cfg, info.fps, start=a, final=b == n)
            signals = cut_signals(raw, a, b, lo, split_cfg)
    except (VideoError, DataError, ValueError):
        signals = None
    return {"signals": signals, "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}


def plan_split(src: Source, split_cfg: SplitConfig, work_dir: str, segment_s: float) -> SegmentedSplit | None:
    """A segmented split of a long file source (``curate/segments.py``), or None: split it in one task (a short
    source, a clip inside a shard, a container that does not count its frames, or one that cannot be read: its
    split task reports why)."""
    if segment_s <= 0 or src.shard:
        return None
    try:
        info = probe(src.path)
        if info.is_image or len(plan_segments(info.num_frames, info.fps, split_cfg, segment_s)) < 2:
            return None  # short (most sources): no second look at the file
        n = indexed_count(src.path)
    except (VideoError, DataError):
        return None
    segments = plan_segments(n, info.fps, split_cfg, segment_s)
    if len(segments) < 2:
        return None
    return SegmentedSplit(src, segments, n, split_cfg, work_dir, detect_task, split_task)
