"""Streaming torch dataset over clip shards: split across ranks and workers, shuffle, crop in time, resize, batch.

Splitting. The shard list (sorted; shuffled per epoch when ``shuffle``, identically on every rank) is divided
among ``slots = world_size * num_workers`` readers; slot ``rank * num_workers + worker`` takes shards
``slot, slot + slots, ...``. With fewer shards than slots every slot reads every shard (only the JSON headers
of samples it does not own) and owns one sample of each block of ``slots`` consecutive samples, by a
permutation drawn per (seed, epoch, block). Either way each clip is read by exactly one slot per epoch.
Shard-level splitting can leave slots with unequal sample counts (a DDP trainer should run with ``loop=True``
and a fixed number of steps, or equalise itself).

Determinism (a contract the trainer relies on to resume). For a fixed (seed, epoch, rank, world size,
num_workers) the stream of samples is identical run to run: the shard order comes from a generator seeded by
(seed, epoch), the shuffle buffer from (seed, epoch, slot, slots) and each clip's temporal crop from (seed,
epoch, hash of its key). Global RNG state is never used. ``set_epoch(e)`` picks the epoch; with ``loop=True``
the stream continues with epochs e + 1, e + 2 ... forever. ``ClipLoader`` (from ``make_loader``) has
``state_dict`` / ``load_state_dict``: resuming skips the consumed samples without decoding them (whole epochs
of an endless stream are skipped reading JSON headers only), see ``ClipDataset.resume``.

Time sampling. Frames ``idx[k] = start + floor(k * stride + 1/2)`` for k < ``frames`` with ``stride = source fps /
fps`` (1 without resampling; a stride < 1 repeats frames). ``start`` is random, 0 or centred
(``temporal_crop``). A clip spanning fewer source frames than needed is skipped (``drop_short``) or padded by
repeating its last frame. Arrays follow the alignment rule of ``worldsmith.data.clip``: a per-frame array gives
rows ``arr[idx]`` (T rows); a per-transition array gives T - 1 rows, row k covering the source transitions from
frame ``idx[k]`` to frame ``idx[k + 1]``. Over a stride > 1 they are combined by ``transition_reduce``:
``"sum"`` (displacement-like actions: the sum is the change between the kept frames), ``"mean"`` (rates or held
commands) or ``"stack"`` (lossless: shape (T - 1, stride, ...)). A stride that is not a whole number has no such
meaning, so resampling a clip with per-transition arrays requested to such an fps raises ``DataError``.
Transitions added by padding (between repeated frames) are zero.

Samples are dicts: ``video`` float32 (3, T, H, W) in [-1, 1], ``views`` float32 (V - 1, 3, T, H, W) when
``views``, one float32 tensor per requested array under its own name, ``caption`` str, ``key`` str, ``fps``
float (after resampling) and ``start`` int (source index of the first frame). Frames are decoded at the size
that covers ``size`` = (H, W) and centre-cropped (an int resizes the short side and keeps the aspect ratio).

Caching (``cache_mb``): each reader process may keep the clips it decoded, whole, as uint8 at the training size,
until the budget is used up; later epochs then only index frames. The sample stream does not change.

Bad samples (undecodable video or array) are logged, counted and skipped unless ``strict``; a mismatch between
the config and the data (a requested array a clip lacks, a fractional stride with per-transition arrays, views
of another size with ``size=None``) raises ``DataError``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import ReadStats, Sample, decode_video_member, iter_samples, load_array
from worldsmith.errors import ConfigError, DataError
from worldsmith.io import video

logger = logging.getLogger(__name__)

TEMPORAL_CROPS = ("random", "start", "center")
TRANSITION_REDUCTIONS = ("sum", "mean", "stack")
RESERVED_FIELDS = ("video", "views", "caption", "key", "fps", "start")


@dataclass
class DatasetConfig:
    shards: str  # a shard directory, a glob, one .tar or a manifest (see manifest.list_shards)
    frames: int = 16  # T frames per sample
    fps: float | None = None  # resample to this frame rate; None keeps each clip's own
    size: tuple[int, int] | int | None = None  # (H, W): cover + centre crop; int: short side; None: as stored
    temporal_crop: str = "random"  # "random" | "start" | "center"
    shuffle: bool = True  # shuffle shard order and samples (buffer) per epoch
    shuffle_buffer: int = 64  # samples held per reader for shuffling (raw bytes: mind memory)
    seed: int = 0
    views: bool = False  # also return the extra synchronized views
    arrays: list[str] | None = None  # conditioning arrays to return; None = every array of each clip
    loop: bool = False  # restart with the next epoch forever
    drop_short: bool = True  # skip clips shorter than needed (else pad by repeating the last frame)
    transition_reduce: str = "sum"  # how per-transition arrays combine over a resampling stride
    strict: bool = False  # raise on a bad sample instead of logging and skipping it
    # keep decoded clips (uint8, at the training size) in memory, up to this many MB per reader process, so
    # later epochs skip decoding; for small datasets trained for many epochs (e.g. a tokenizer on a CPU)
    cache_mb: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.size, list):
            self.size = tuple(self.size)
        sides = (self.size,) if not isinstance(self.size, tuple) else self.size if len(self.size) == 2 else (0,)
        size_ok = self.size is None or all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides)
        checks = [
            (bool(self.shards), "shards must name a shard directory, glob, .tar or manifest"),
            (self.frames >= 1, f"frames must be >= 1, got {self.frames}"),
            (self.fps is None or self.fps > 0, f"fps must be positive or None, got {self.fps}"),
            (size_ok, f"size must be (H, W), a positive int or None, got {self.size!r}"),
            (self.temporal_crop in TEMPORAL_CROPS, f"temporal_crop must be one of {TEMPORAL_CROPS}"),
            (self.transition_reduce in TRANSITION_REDUCTIONS, f"transition_reduce must be in {TRANSITION_REDUCTIONS}"),
            (self.shuffle_buffer >= 1, f"shuffle_buffer must be >= 1, got {self.shuffle_buffer}"),
            (self.cache_mb >= 0, f"cache_mb must be >= 0, got {self.cache_mb}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"dataset config: {message}.")
        clash = sorted(set(self.arrays or []) & set(RESERVED_FIELDS))
        if clash:
            raise ConfigError(f"dataset config: arrays {clash} clash with sample fields {RESERVED_FIELDS}.")


def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng([w % 2**64 for w in words])


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


@dataclass
class Plan:
    """What to take from one clip: source frame indices (T,), the stride and the arrays to load."""

    indices: np.ndarray
    start: int
    stride: float
    arrays: list[str]


def plan_clip(header: dict[str, Any], cfg: DatasetConfig, epoch: int) -> Plan | None:
    """Choose frames and arrays for a clip from its header; None when it is too short and ``drop_short``."""
    t, key = header["num_frames"], header["key"]
    stride = 1.0 if cfg.fps is None else header["fps"] / cfg.fps
    span = math.floor((cfg.frames - 1) * stride + 0.5) + 1  # source frames covered
    if span > t and cfg.drop_short:
        return None
    names = sorted(header["arrays"]) if cfg.arrays is None else list(cfg.arrays)
    lacking, clash = [n for n in names if n not in header["arrays"]], sorted(set(names) & set(RESERVED_FIELDS))
    if lacking or clash:
        why = f"has no array {lacking}" if lacking else f"has arrays {clash} named like sample fields"
        raise DataError(f"clip {key} {why} (it has {sorted(header['arrays'])}); set arrays= to the names to load.")
    per_transition = [n for n in names if header["arrays"][n]["shape"][0] == t - 1]
    whole = round(stride) >= 1 and abs(stride - round(stride)) <= 1e-6 * stride
    if per_transition and not whole:
        raise DataError(f"clip {key}: {header['fps']} -> {cfg.fps} fps is a stride of {stride:.4g} frames, but "
                        f"per-transition arrays {per_transition} need a whole stride; choose an fps that divides "
                        f"{header['fps']} or leave them out of arrays=.")  # fmt: skip
    if cfg.views and cfg.size is None and any((v["height"], v["width"]) != (header["height"], header["width"])
                                              for v in header["views"]):  # fmt: skip
        raise DataError(f"clip {key} has views of another size than its main view; set size= to batch them.")
    room = max(t - span, 0)
    start = {"random": int(_rng(cfg.seed, epoch, _key_hash(key)).integers(room + 1)), "start": 0,
             "center": room // 2}[cfg.temporal_crop]  # fmt: skip
    indices = start + np.floor(np.arange(cfg.frames) * stride + 0.5).astype(np.int64)
    return Plan(np.minimum(indices, t - 1), start, stride, names)


def take_transitions(arr: np.ndarray, indices: np.ndarray, stride: int, reduce: str) -> np.ndarray:
    """Rows of a per-transition array for the transitions between consecutive chosen frames."""
    rows = indices[:-1, None] + np.arange(stride)  # (T-1, k) source transitions per new transition
    valid = rows < indices[1:, None]  # (T-1, k): none where padding repeats a frame
    if arr.shape[0] == 0:
        parts = np.zeros(rows.shape + arr.shape[1:], np.float32)
    else:
        mask = valid.reshape(valid.shape + (1,) * (arr.ndim - 1))
        parts = arr[np.minimum(rows, arr.shape[0] - 1)].astype(np.float32) * mask  # (T-1, k, ...)
    if reduce == "stack":
        return parts
    total = parts.sum(axis=1)  # (T-1, ...)
    if reduce == "mean":
        total /= np.maximum(valid.sum(axis=1), 1).reshape((-1,) + (1,) * (arr.ndim - 1))
    return total


HW = tuple[int, int]


def _resize_plan(h: int, w: int, size: HW | int | None) -> tuple[HW | None, HW | None]:
    """(size to decode at, centre crop) for a stored h x w video; computed from the true size, so the row or
    column an encoder pads odd sizes with never changes the scale."""
    if size is None:
        return None, None
    if isinstance(size, int):
        scale = size / min(h, w)
        return (max(1, round(h * scale)), max(1, round(w * scale))), None
    scale = max(size[0] / h, size[1] / w)
    return (max(size[0], round(h * scale)), max(size[1], round(w * scale))), size  # covers (H, W)


class FrameCache:
    """Decoded clips (whole, uint8, resized and cropped) kept in memory up to ``budget_mb``; then no more are added."""

    def __init__(self, budget_mb: int) -> None:
        self.budget, self.used, self.clips = budget_mb * 2**20, 0, {}

    def get(self, key: tuple, decode: Any) -> np.ndarray:
        frames = self.clips.get(key)
        if frames is None:
            frames = decode()
            if self.used + frames.nbytes <= self.budget:
                self.clips[key] = frames
                self.used += frames.nbytes
        return frames


def _decode_view(raw: Sample, ext: str, h: int, w: int, plan: Plan, cfg: DatasetConfig,
                 cache: FrameCache | None = None) -> torch.Tensor:  # fmt: skip
    """Frames ``plan.indices`` of one video member as float32 (3, T, H, W) in [-1, 1]."""
    size, crop = _resize_plan(h, w, cfg.size)

    def decode(first: int, end: int | None) -> np.ndarray:
        frames = decode_video_member(raw, ext, h, w, start=first, end=end, size=size)  # (end - first, H', W', 3)
        if crop is not None:
            top, left = (frames.shape[1] - crop[0]) // 2, (frames.shape[2] - crop[1]) // 2
            frames = frames[:, top : top + crop[0], left : left + crop[1]]
        return np.ascontiguousarray(frames)

    if cache is not None:  # the whole clip, once
        frames = cache.get((raw["__url__"], raw["__key__"], ext), lambda: decode(0, None))[plan.indices]
    else:
        first, end = int(plan.indices.min()), int(plan.indices.max()) + 1  # decode only the span used (seeks)
        frames = decode(first, end)[plan.indices - first]  # (T, H', W', 3)
    return video.to_tensor(np.ascontiguousarray(frames))  # (3, T, H, W)


def load_sample(raw: Sample, plan: Plan, cfg: DatasetConfig, cache: FrameCache | None = None) -> dict[str, Any]:
    """Decode one planned raw sample into the training sample dict (see the module docstring)."""
    h = raw["__header__"]
    t = h["num_frames"]
    out: dict[str, Any] = {"video": _decode_view(raw, "mp4", h["height"], h["width"], plan, cfg, cache)}
    if cfg.views:
        views = [_decode_view(raw, f"view{i}.mp4", v["height"], v["width"], plan, cfg, cache)
                 for i, v in enumerate(h["views"], 1)]  # fmt: skip
        out["views"] = torch.stack(views) if views else out["video"].new_zeros((0, *out["video"].shape))
    for name in plan.arrays:
        arr = load_array(raw, name)
        if arr.shape[0] == t - 1:
            arr = take_transitions(arr, plan.indices, round(plan.stride), cfg.transition_reduce)
        else:
            arr = arr[plan.indices]
        out[name] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    fps = float(cfg.fps) if cfg.fps is not None else float(h["fps"])
    out.update(caption=h["caption"], key=h["key"], fps=fps, start=plan.start)
    return out


def shuffled(items: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Shuffle a stream through a buffer of ``size`` items."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(size))
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer


class _BlockOwner:
    """Which reader owns sample ``i`` of an epoch when readers share shards: in each block of ``slots``
    consecutive samples every reader takes one, by a permutation drawn per (seed, epoch, block)."""

    def __init__(self, seed: int, epoch: int, slots: int) -> None:
        self.seed, self.epoch, self.slots = seed, epoch, slots
        self.block, self.perm = -1, np.arange(slots)

    def __call__(self, i: int) -> int:
        block = i // self.slots
        if block != self.block:
            self.block, self.perm = block, _rng(self.seed, self.epoch, block, 0xB10C).permutation(self.slots)
        return int(self.perm[i % self.slots])


class ClipDataset(IterableDataset):
    """Stream training samples from shards; see the module docstring for splitting and determinism."""

    def __init__(self, cfg: DatasetConfig, *, rank: int | None = None, world_size: int | None = None) -> None:
        super().__init__()
        if (rank is None) != (world_size is None) or (world_size is not None and not 0 <= rank < world_size):
            raise ConfigError(f"rank and world_size must be given together with 0 <= rank < world_size, "
                              f"got rank={rank}, world_size={world_size}.")  # fmt: skip
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.shards = [str(p) for p in list_shards(cfg.shards)]
        self.epoch, self._first_role, self._skips = 0, 0, [0]
        self._cache = FrameCache(cfg.cache_mb) if cfg.cache_mb else None  # each worker process has its own copy

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next iteration starts with (and forget any ``resume`` position)."""
        self.epoch, self._first_role, self._skips = int(epoch), 0, [0]

    def resume(self, epoch: int, batches: int, batch_size: int, num_workers: int, drop_last: bool = False) -> None:
        """Continue epoch ``epoch`` after ``batches`` batches of a DataLoader with these settings were consumed.

        The loader takes batch after batch from its workers in turn, dropping a worker when it runs out. This
        replays that order on the per-worker batch counts (read from the JSON headers only) to find how many
        samples each worker had produced, which it then skips undecoded, and rotates the workers' roles so the
        resumed loader, which asks worker 0 first, yields exactly the batches that would have come next. Exact
        unless samples were skipped as bad before the checkpoint.
        """
        workers = max(num_workers, 1)
        rank, world = self._rank()
        if self.cfg.loop:  # endless: no worker runs out
            done, first = [max(0, -(-(batches - w) // workers)) for w in range(workers)], batches % workers
        else:
            counts = [self.count(epoch, rank * workers + w, world * workers) for w in range(workers)]
            done, first = _round_robin([c // batch_size if drop_last else -(-c // batch_size) for c in counts], batches)
        self.epoch, self._first_role, self._skips = int(epoch), first, [d * batch_size for d in done]

    def _rank(self) -> tuple[int, int]:
        if self.rank is not None:
            return self.rank, self.world_size  # type: ignore[return-value]
        dist = torch.distributed
        ready = dist.is_available() and dist.is_initialized()
        return (dist.get_rank(), dist.get_world_size()) if ready else (0, 1)

    def _reader(self) -> tuple[int, int, int]:
        """(slot, slots, samples to skip) of the calling process."""
        rank, world = self._rank()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if len(self._skips) not in (1, workers):
            raise ConfigError(f"resume() was told {len(self._skips)} workers but the loader has {workers}.")
        role = (worker + self._first_role) % workers
        return rank * workers + role, world * workers, self._skips[role % len(self._skips)]

    def _raw(self, epoch: int, slot: int, slots: int, stats: ReadStats, media: bool) -> Iterator[Sample]:
        cfg, shards = self.cfg, list(self.shards)
        if cfg.shuffle:
            _rng(cfg.seed, epoch).shuffle(shards)
        wanted = set(cfg.arrays or [])

        def read(ext: str) -> bool:
            return media and (ext == "mp4" or (cfg.views and ext.startswith("view")) or (
                ext.endswith(".npy") and (cfg.arrays is None or ext[:-4] in wanted)))  # fmt: skip

        if len(shards) >= slots:
            for shard in shards[slot::slots]:
                yield from iter_samples(shard, strict=cfg.strict, read=read, stats=stats)
            return
        owner = _BlockOwner(cfg.seed, epoch, slots)
        base = 0
        for shard in shards:
            seen = stats.samples
            keep = lambda i, b=base: owner(b + i) == slot  # noqa: E731
            yield from iter_samples(shard, strict=cfg.strict, read=read, keep=keep, stats=stats)
            base += stats.samples - seen

    def _planned(
        self, epoch: int, slot: int, slots: int, stats: ReadStats, media: bool = True
    ) -> Iterator[tuple[Sample, Plan]]:
        cfg = self.cfg
        raws = self._raw(epoch, slot, slots, stats, media)
        planned = ((raw, plan) for raw in raws if (plan := plan_clip(raw["__header__"], cfg, epoch)) is not None)
        if cfg.shuffle and media:
            planned = shuffled(planned, cfg.shuffle_buffer, _rng(cfg.seed, epoch, slot, slots, 0x5EED))
        return planned

    def count(self, epoch: int, slot: int, slots: int) -> int:
        """Samples reader ``slot`` of ``slots`` yields in ``epoch`` (bad videos aside); reads JSON headers only."""
        return sum(1 for _ in self._planned(epoch, slot, slots, ReadStats(), media=False))

    def _stream(self, slot: int, slots: int, skip: int, stats: ReadStats) -> Iterator[tuple[Sample, Plan]]:
        epoch = self.epoch
        while True:
            if skip and self.cfg.loop and 0 < (n := self.count(epoch, slot, slots)) <= skip:
                epoch, skip = epoch + 1, skip - n  # skip a whole epoch without reading its videos
                continue
            count = 0
            for item in itertools.islice(self._planned(epoch, slot, slots, stats), skip, None):
                count += 1
                yield item
            if stats.skipped:
                logger.warning("epoch %d, reader %d/%d: %d bad samples skipped", epoch, slot, slots, stats.skipped)
            if not self.cfg.loop or count == 0:  # an empty reader would loop forever
                return
            epoch, skip = epoch + 1, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots, skip = self._reader()
        stats = ReadStats()
        for raw, plan in self._stream(slot, slots, skip, stats):
            try:
                sample = load_sample(raw, plan, self.cfg, self._cache)
            except DataError as e:
                stats.report(str(e).rstrip("."), self.cfg.strict)
                continue
            yield sample


def _round_robin(batches: list[int], consumed: int) -> tuple[list[int], int]:
    """Batches each worker had produced after ``consumed`` outputs of a loader cycling over workers that hold
    ``batches[w]`` batches (a worker found empty on its turn drops out), and the worker whose turn is next."""
    done, turn, out = [0] * len(batches), 0, 0
    while out < consumed and any(d < b for d, b in zip(done, batches, strict=True)):
        if done[turn] < batches[turn]:
            done[turn], out = done[turn] + 1, out + 1
        turn = (turn + 1) % len(batches)
    return done, turn


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch sample dicts: tensors stacked (B, ...), ``fps`` float32 (B,), ``start`` int64 (B,), strings in lists."""
    if not samples:
        raise DataError("cannot collate an empty batch.")
    fields = list(samples[0])
    for s in samples[1:]:
        if list(s) != fields:
            raise DataError(f"cannot batch clips {samples[0]['key']} and {s['key']}: their fields differ "
                            f"({fields} vs {list(s)}); set arrays= to names every clip has.")  # fmt: skip
    batch: dict[str, Any] = {}
    for name in fields:
        values = [s[name] for s in samples]
        if isinstance(values[0], torch.Tensor):
            shapes = sorted({tuple(v.shape) for v in values})
            if len(shapes) > 1:
                raise DataError(f"cannot batch {name!r}: clips give shapes {shapes[:3]}; set size=(H, W) (or keep "
                                f"one array shape and view count per dataset) or use batch_size=1.")  # fmt: skip
            batch[name] = torch.stack(values)
        elif name == "fps":
            batch[name] = torch.tensor(values, dtype=torch.float32)
        elif name == "start":
            batch[name] = torch.tensor(values, dtype=torch.int64)
        else:
            batch[name] = values
    return batch


class ClipLoader(DataLoader):
    """A DataLoader over a ClipDataset that knows its position: ``state_dict`` / ``load_state_dict`` resume
    exactly (see ``ClipDataset.resume``) without decoding the batches already consumed."""

    def __init__(self, dataset: ClipDataset, batch_size: int, num_workers: int = 0, drop_last: bool = False) -> None:
        super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate,
                         drop_last=drop_last, persistent_workers=False)  # fmt: skip
        self.batches, self._start = 0, 0  # batches yielded in the current epoch, where the next iteration starts

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        self._start = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.batches = self._start
        for batch in super().__iter__():
            self.batches += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        d: ClipDataset = self.dataset  # type: ignore[assignment]
        return {"epoch": d.epoch, "batches": self.batches, "batch_size": self.batch_size,
                "num_workers": self.num_workers, "world_size": d._rank()[1], "seed": d.cfg.seed}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        now = self.state_dict()
        changed = [k for k in ("batch_size", "num_workers", "world_size", "seed") if state.get(k) != now[k]]
        if changed:
            before, after = [state.get(k) for k in changed], [now[k] for k in changed]
            raise DataError(f"cannot resume the data stream exactly: {changed} changed since the checkpoint "
                            f"({before} -> {after}); restore them.")  # fmt: skip
        dataset: ClipDataset = self.dataset  # type: ignore[assignment]
        dataset.resume(state["epoch"], state["batches"], self.batch_size, self.num_workers, self.drop_last)
        self._start = state["batches"]


def make_loader(
    cfg: DatasetConfig,
    batch_size: int,
    num_workers: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    *,
    drop_last: bool = False,
) -> ClipLoader:
    """A ``ClipLoader`` over ``ClipDataset(cfg)``; call ``loader.set_epoch(e)`` before each epoch.

    Workers are not persistent, so ``set_epoch`` reaches them at the start of every ``iter(loader)``.
    """
    if batch_size < 1 or num_workers < 0:
        raise ConfigError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} and {num_workers}.")
    return ClipLoader(ClipDataset(cfg, rank=rank, world_size=world_size), batch_size, num_workers, drop_last)
