"""``DatasetConfig``: what the streaming dataset (``worldsmith.data.dataset``) reads and how it samples clips."""

from __future__ import annotations

from dataclasses import dataclass

from worldsmith.errors import ConfigError

TEMPORAL_CROPS = ("random", "start", "center")
TRANSITION_REDUCTIONS = ("sum", "mean", "stack")
RESERVED_FIELDS = ("video", "views", "caption", "key", "fps", "start")


@dataclass
class DatasetConfig:
    shards: str  # a shard directory or curate output, a glob, one .tar or a manifest (see manifest.list_shards)
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
