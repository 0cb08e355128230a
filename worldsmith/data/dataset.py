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

Each sample is one clip's frames and arrays, chosen and decoded by ``worldsmith.data.clip_sampling`` (time
sampling, array alignment, resizing, caching); ``DatasetConfig`` lives in ``worldsmith.data.dataset_config``.

Bad samples (undecodable video or array) are logged, counted and skipped unless ``strict``; a mismatch between
the config and the data (a requested array a clip lacks, a fractional stride with per-transition arrays, views
of another size with ``size=None``) raises ``DataError``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from worldsmith.data.clip_sampling import FrameCache, Plan, load_sample, plan_clip, seeded_rng
from worldsmith.data.dataset_config import DatasetConfig
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import ReadStats, Sample, iter_samples
from worldsmith.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["DatasetConfig", "ClipDataset", "ClipLoader", "collate", "make_loader"]


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
            self.block, self.perm = block, seeded_rng(self.seed, self.epoch, block, 0xB10C).permutation(self.slots)
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
            seeded_rng(cfg.seed, epoch).shuffle(shards)
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
            planned = shuffled(planned, cfg.shuffle_buffer, seeded_rng(cfg.seed, epoch, slot, slots, 0x5EED))
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
    exactly (see ``ClipDataset.resume``) without decoding the batches already consumed.

    It draws nothing from the global RNGs: torch's DataLoader takes a base seed for its workers from a generator
    each time an iterator starts, and here that is the loader's own, seeded by (seed, epoch), so a resumed run's
    global RNG (dropout, noise levels ...) stays exactly that of the uninterrupted run."""

    def __init__(self, dataset: ClipDataset, batch_size: int, num_workers: int = 0, drop_last: bool = False) -> None:
        super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate,
                         drop_last=drop_last, persistent_workers=False, generator=torch.Generator())  # fmt: skip
        self.batches, self._start = 0, 0  # batches yielded in the current epoch, where the next iteration starts

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        self._start = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.batches = self._start
        d: ClipDataset = self.dataset  # type: ignore[assignment]
        self.generator.manual_seed(d.cfg.seed * 1_000_003 + d.epoch)
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
