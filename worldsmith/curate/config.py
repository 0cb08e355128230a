"""The configuration of a curation run: one dataclass per stage plus the engine settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from worldsmith.curate.dedup import DedupConfig
from worldsmith.curate.process import AnnotateConfig, FilterConfig
from worldsmith.curate.shard import ShardConfig
from worldsmith.curate.split import SplitConfig
from worldsmith.errors import ConfigError

ENGINE_FIELDS = ("engine", "workers", "ray_address", "max_in_flight", "segment_s", "progress")  # may change on resume


@dataclass
class CurateConfig:
    split: SplitConfig = field(default_factory=SplitConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    engine: Literal["local", "ray"] = "local"
    workers: int = 0  # worker processes (local) or Ray CPUs (local Ray); 0 = one per core
    ray_address: str = ""  # "" starts a local Ray; "auto" or "ray://host:10001" joins a cluster
    max_in_flight: int = 0  # items submitted but not finished (bounds memory); 0 = 2 x workers
    segment_s: float = 60.0  # local engine, > 1 worker: a source longer than two segments of about this many seconds
    # is split by several workers at once (curate/segments.py; the same outputs); 0 = one worker per source
    progress: bool = True  # progress bars on stderr

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = one per core), got {self.workers}.")
        if self.segment_s < 0:
            raise ConfigError(f"segment_s must be >= 0 seconds (0 = split each source in one task), got {self.segment_s}.")
        if self.max_in_flight < 0:
            raise ConfigError(f"max_in_flight must be >= 0, got {self.max_in_flight}.")

    @property
    def num_workers(self) -> int:
        return self.workers or os.cpu_count() or 1
