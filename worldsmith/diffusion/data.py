"""Training data of the diffusion world model: clips -> tokenizer latents + caption states, live or cached.

Per batch: clips (B, 3, T, H, W) -> tokenizer latents (B, C, T', H', W') + MiniLM token states of the captions (+
fps in latent frames per second). With ``cache_latents`` every clip is encoded once, at ``cache_crops`` random
crops, into one safetensors file (rebuilt when the data settings, the tokenizer's weights or the crop settings
change); training then never decodes a video or runs the tokenizer: the fast path on a CPU. Under torchrun rank 0
builds the cache and the other ranks wait and read it (``worldsmith.train.runtime.main_first``), the same way the
autoregressive family builds its token set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from worldsmith.data.dataset import DatasetConfig, make_loader
from worldsmith.errors import ConfigError, DataError
from worldsmith.weights import load_tensors, read_metadata, save_tensors


@dataclass
class DiffusionDataConfig:
    shards: str = ""  # training clips: a shard directory, glob, .tar or manifest.parquet
    tokenizer: str = ""  # run directory of a trained continuous tokenizer (cv*)
    frames: int = 17  # frames per training clip; must be 1 + k * the tokenizer's temporal compression
    size: int = 64  # frames are resized (short side) and centre-cropped to size x size
    fps: float | None = None  # resample clips to this rate; None keeps each clip's own
    num_workers: int = 0  # data loader processes (uncached path)
    cache_latents: bool = False  # encode every clip once (at cache_crops random crops) and train from the cache
    cache_crops: int = 4  # random temporal crops encoded per clip when caching
    stats_batches: int = 8  # batches to measure the latents' mean and std on (uncached path)

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 8 or self.num_workers < 0 or self.cache_crops < 1 or self.stats_batches < 1:
            raise ConfigError("data.frames >= 1, data.size >= 8, data.num_workers >= 0, data.cache_crops >= 1 and "
                              "data.stats_batches >= 1 are required.")  # fmt: skip


class EncodedBatches:
    """Clip batches -> latent batches; keeps the clip loader's epoch and resumable position."""

    def __init__(self, loader, tokenizer, text_encoder) -> None:
        self.loader, self.tokenizer, self.text_encoder = loader, tokenizer, text_encoder

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        device = next(self.tokenizer.parameters()).device
        ct = self.tokenizer.cfg.temporal_compression
        for batch in self.loader:
            latents = self.tokenizer.encode(batch["video"].to(device))  # (B, C, T', H', W')
            yield text_batch(latents, batch["caption"], batch["fps"] / ct, self.text_encoder)


def text_batch(latents: torch.Tensor, captions: list[str], latent_fps: torch.Tensor, text_encoder) -> dict:
    emb = text_encoder.encode(list(captions))
    return {"latents": latents, "text": emb.tokens, "text_mask": emb.mask, "fps": latent_fps.float()}


class CachedLatentBatches:
    """Shuffled batches of cached latents; the same batches for the same epoch (resume replays the epoch)."""

    def __init__(self, latents: torch.Tensor, captions: list[str], fps: torch.Tensor, batch_size: int, seed: int,
                 text_encoder) -> None:  # fmt: skip
        self.latents, self.captions, self.fps = latents, captions, fps
        self.batch_size, self.seed, self.epoch, self.text_encoder = batch_size, seed, 0, text_encoder

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        n, bs = len(self.latents), min(self.batch_size, len(self.latents))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch))
        for i in range(0, n - bs + 1, bs):
            idx = order[i : i + bs]
            yield text_batch(self.latents[idx], [self.captions[j] for j in idx], self.fps[idx], self.text_encoder)


def dataset_config(data: DiffusionDataConfig, seed: int, *, loop: bool, shuffle: bool) -> DatasetConfig:
    return DatasetConfig(shards=data.shards, frames=data.frames, fps=data.fps, size=(data.size, data.size),
                         temporal_crop="random", shuffle=shuffle, seed=seed, loop=loop, arrays=[])  # fmt: skip


def cache_settings(data: DiffusionDataConfig, seed: int) -> dict[str, Any]:
    """What a latent cache was built from; a cache with other settings is rebuilt."""
    weights = Path(data.tokenizer) / "model.safetensors"  # a retrained tokenizer invalidates the cache
    return {"shards": data.shards, "tokenizer": str(weights.resolve()), "weights_mtime_ns": weights.stat().st_mtime_ns,
            "frames": data.frames, "size": data.size, "fps": data.fps, "crops": data.cache_crops, "seed": seed}  # fmt: skip


@torch.no_grad()
def build_latent_cache(data: DiffusionDataConfig, tokenizer, path: Path, seed: int = 0) -> None:
    """Encode every clip at ``data.cache_crops`` random crops into ``path``, unless it holds them already."""
    meta = cache_settings(data, seed)
    if path.is_file() and json.loads(read_metadata(path).get("meta", "{}")) == meta:
        return
    device = next(tokenizer.parameters()).device
    ct = tokenizer.cfg.temporal_compression
    latents, captions, fps = [], [], []
    for crop in range(data.cache_crops):
        loader = make_loader(dataset_config(data, seed + crop, loop=False, shuffle=False), 8, data.num_workers)
        for batch in loader:
            latents.append(tokenizer.encode(batch["video"].to(device)).cpu())
            captions += list(batch["caption"])
            fps += (batch["fps"] / ct).tolist()
    if not latents:
        raise DataError(f"no clips of {data.frames} frames found in {data.shards}; check the path or lower data.frames.")
    save_tensors({"latents": torch.cat(latents)}, path, metadata={"meta": json.dumps(meta), "captions": json.dumps(captions),
                                                                  "fps": json.dumps(fps)})  # fmt: skip


def read_latent_cache(path: Path) -> dict[str, Any]:
    """{"latents" (N, C, T', H', W'), "captions" [N], "fps" (N,) latent frames per second} of a cache file."""
    stored = read_metadata(path)
    return {"latents": load_tensors(path)["latents"], "captions": json.loads(stored["captions"]),
            "fps": torch.tensor(json.loads(stored["fps"]))}  # fmt: skip
