"""``worldsmith train diffusion``: train the diffusion world model on clip shards through a trained tokenizer.

A run's ``config.yaml`` has ``model`` (WorldModelConfig, from a preset), ``train`` (the shared TrainConfig) and
``data`` (DiffusionDataConfig), resolved as preset <- YAML <- ``--set``. To resume, run the same command again.

Data path, per batch: clips (B, 3, T, H, W) -> tokenizer latents (B, C, T', H', W') + MiniLM token states of the
captions (+ fps in latent frames per second). With ``data.cache_latents`` every clip is encoded once, at
``data.cache_crops`` random crops, into ``run_dir/latent_cache.safetensors`` (rebuilt when the data settings, the
tokenizer's weights or the crop settings change), and training then never decodes a video or runs the tokenizer: the fast path on a CPU.

Before the first step the latents' per-channel mean and std are measured and stored in the model (buffers saved
with the weights), and ``run_dir/generation.json`` records the tokenizer and clip geometry that generation uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from worldsmith import config as C
from worldsmith.atomic import atomic_write_text
from worldsmith.diffusion.model import DiffusionWorldModel
from worldsmith.diffusion.presets import WorldModelConfig
from worldsmith.errors import CheckpointError, ConfigError, DataError
from worldsmith.train import TrainConfig

CACHE_FILE = "latent_cache.safetensors"
GENERATION_FILE = "generation.json"


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


def default_train_config() -> TrainConfig:
    return TrainConfig(steps=20000, batch_size=8, lr=3e-4, warmup_steps=500, weight_decay=0.0, ema_decay=0.999,
                       log_every=25, ckpt_every=1000)  # fmt: skip


@dataclass
class DiffusionRunConfig:
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    data: DiffusionDataConfig = field(default_factory=DiffusionDataConfig)


def resolve_run_config(
    preset: str = "small", config_yaml: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
    data: str | None = None, tokenizer: str | None = None,
) -> DiffusionRunConfig:  # fmt: skip
    """preset <- YAML file <- --set overrides (<- --data / --tokenizer)."""
    import worldsmith.diffusion.presets  # noqa: F401  (registers the presets)

    cfg = C.resolve(DiffusionRunConfig(model=C.preset("diffusion", preset)), config_yaml, overrides)
    if data:
        cfg = C.merge(cfg, {"data": {"shards": str(data)}})
    if tokenizer:
        cfg = C.merge(cfg, {"data": {"tokenizer": str(tokenizer)}})
    return cfg


def load_tokenizer(run_dir: str | Path, device: str | torch.device = "cpu"):
    """The continuous tokenizer of ``run_dir`` in eval mode; clear errors for a missing or discrete one."""
    from worldsmith.tokenizer import CausalVideoTokenizer

    if not run_dir:
        raise ConfigError("no tokenizer: pass --tokenizer with the run directory of a trained continuous tokenizer.")
    if not (Path(run_dir) / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a tokenizer run directory (no config.yaml); train one with "
                              f"`worldsmith tokenizer train` and pass its --out directory.")  # fmt: skip
    tok = CausalVideoTokenizer.from_pretrained(run_dir, device=device)
    if tok.fsq is not None:
        raise ConfigError(f"the diffusion model needs a continuous tokenizer (cv*), but {run_dir} holds a discrete "
                          f"{tok.cfg.name} one; the discrete tokens are for the autoregressive model.")  # fmt: skip
    return tok.requires_grad_(False)


def check_geometry(cfg: DiffusionRunConfig, tok_cfg) -> WorldModelConfig:
    """The model config fitted to the tokenizer (latent channels), after checking frames and size fit both."""
    ct, cs, p, data = tok_cfg.temporal_compression, tok_cfg.spatial_compression, cfg.model.dit.patch, cfg.data
    if (data.frames - 1) % ct:
        raise ConfigError(f"data.frames must be 1 + k*{ct} for the {tok_cfg.name} tokenizer (e.g. {1 + 4 * ct}), "
                          f"got {data.frames}.")  # fmt: skip
    if data.size % (cs * p):
        raise ConfigError(f"data.size must be a multiple of {cs * p} (tokenizer compression {cs} x patch {p}), got {data.size}.")
    t, h, w = tok_cfg.latent_shape(data.frames, data.size, data.size)
    tt, th, tw = cfg.model.dit.max_latent
    if cfg.model.dit.abs_pos and (t > tt or h > th or w > tw):
        raise ConfigError(f"model.dit.max_latent {[tt, th, tw]} is smaller than the training latents {[t, h, w]}; raise it.")
    return C.merge(cfg.model, {"dit": {"latent_channels": tok_cfg.latent_channels}})


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


def _dataset_config(data: DiffusionDataConfig, seed: int, *, loop: bool, shuffle: bool):
    from worldsmith.data.dataset import DatasetConfig

    return DatasetConfig(shards=data.shards, frames=data.frames, fps=data.fps, size=(data.size, data.size),
                         temporal_crop="random", shuffle=shuffle, seed=seed, loop=loop, arrays=[])  # fmt: skip


@torch.no_grad()
def build_latent_cache(data: DiffusionDataConfig, tokenizer, path: Path, seed: int = 0) -> dict[str, Any]:
    """Encode every clip at ``data.cache_crops`` random crops into ``path``; reuse it when its settings match."""
    from worldsmith.data.dataset import make_loader
    from worldsmith.train.checkpoint import load_tensors, save_tensors

    weights = Path(data.tokenizer) / "model.safetensors"  # a retrained tokenizer invalidates the cache
    meta = {"shards": data.shards, "tokenizer": str(weights.resolve()), "weights_mtime_ns": weights.stat().st_mtime_ns,
            "frames": data.frames, "size": data.size, "fps": data.fps, "crops": data.cache_crops, "seed": seed}  # fmt: skip
    if path.is_file():
        import safetensors

        with safetensors.safe_open(str(path), framework="pt") as f:
            stored = f.metadata() or {}
        if json.loads(stored.get("meta", "{}")) == meta:
            return {"latents": load_tensors(path)["latents"], "captions": json.loads(stored["captions"]),
                    "fps": torch.tensor(json.loads(stored["fps"]))}  # fmt: skip
    device = next(tokenizer.parameters()).device
    ct = tokenizer.cfg.temporal_compression
    latents, captions, fps = [], [], []
    for crop in range(data.cache_crops):
        loader = make_loader(_dataset_config(data, seed + crop, loop=False, shuffle=False), 8, data.num_workers)
        for batch in loader:
            latents.append(tokenizer.encode(batch["video"].to(device)).cpu())
            captions += list(batch["caption"])
            fps += (batch["fps"] / ct).tolist()
    if not latents:
        raise DataError(f"no clips of {data.frames} frames found in {data.shards}; check the path or lower data.frames.")
    out = {"latents": torch.cat(latents), "captions": captions, "fps": torch.tensor(fps)}
    save_tensors({"latents": out["latents"]}, path, metadata={"meta": json.dumps(meta), "captions": json.dumps(captions),
                                                              "fps": json.dumps(fps)})  # fmt: skip
    return out


@torch.no_grad()
def write_preview(model: DiffusionWorldModel, tokenizer, batch: dict, out_dir: Path, fps: float) -> dict[str, float]:
    """Video2World from the first latent frame of ``batch``; writes truth | generation side by side as preview.mp4."""
    from worldsmith.diffusion.condition import Condition
    from worldsmith.diffusion.model import with_condition_frames
    from worldsmith.io.video import encode_mp4, to_uint8

    device = next(model.parameters()).device
    x0 = model.normalize(batch["latents"].to(device).float())  # (B, C, T', H', W')
    b = x0.shape[0]
    cond = Condition(batch["text"].to(device), batch["text_mask"].to(device), fps=batch["fps"].to(device))
    cond = with_condition_frames(cond, x0, torch.ones(b, dtype=torch.long, device=device),
                                 torch.full((b,), model.cfg.cond_sigma, device=device))  # fmt: skip
    x = model.generate(cond, tuple(x0.shape[2:]), steps=10, generator=torch.Generator(device).manual_seed(0))
    truth, fake = (tokenizer.decode(model.denormalize(z)).clamp(-1, 1) for z in (x0, x))  # (B, 3, T, H, W)
    side = torch.cat([truth, fake], dim=-1).permute(1, 2, 3, 0, 4).flatten(3)  # (3, T, H, B*2W)
    encode_mp4(to_uint8(side.cpu()), out_dir / "preview.mp4", fps=fps)
    return {"latent_mse": float((x - x0)[:, :, 1:].square().mean())}


def train_diffusion(
    cfg: DiffusionRunConfig, run_dir: str | Path, *, tokenizer: str | Path | None = None, shards: str | Path | None = None,
    fresh: bool = False, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Train (or resume) the diffusion world model into ``run_dir``; returns a summary with the last logs."""
    from worldsmith.conditioning.text import default_text_encoder
    from worldsmith.data.dataset import make_loader
    from worldsmith.train import Trainer, seed_everything
    from worldsmith.train.checkpoint import find_train_state

    if tokenizer is not None or shards is not None:
        cfg = C.merge(cfg, {"data": {k: str(v) for k, v in (("tokenizer", tokenizer), ("shards", shards)) if v}})
    if not cfg.data.shards:
        raise ConfigError("no training data: pass --data with a shard directory (e.g. from `worldsmith sim arm --out DIR`).")
    run_dir = Path(run_dir)
    device = "cuda" if cfg.train.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    tok = load_tokenizer(cfg.data.tokenizer, device)
    cfg = C.merge(cfg, {"model": C.to_dict(check_geometry(cfg, tok.cfg))})
    if not progress:
        cfg = C.merge(cfg, {"train": {"progress": False}})
    text_encoder = default_text_encoder(device)
    seed_everything(cfg.train.seed)
    model = DiffusionWorldModel(cfg.model)
    # 1. the data: cached latents or clips encoded on the fly
    if cfg.data.cache_latents:
        cache = build_latent_cache(cfg.data, tok, run_dir / CACHE_FILE, cfg.train.seed)
        data = CachedLatentBatches(cache["latents"], cache["captions"], cache["fps"], cfg.train.batch_size,
                                   cfg.train.seed, text_encoder)  # fmt: skip
        sample_latents, clip_fps = cache["latents"], float(cache["fps"].median()) * tok.cfg.temporal_compression
        preview = text_batch(cache["latents"][:4], cache["captions"][:4], cache["fps"][:4], text_encoder)
    else:
        loader = make_loader(_dataset_config(cfg.data, cfg.train.seed, loop=True, shuffle=True), cfg.train.batch_size,
                             cfg.data.num_workers, drop_last=True)  # fmt: skip
        data = EncodedBatches(loader, tok, text_encoder)
        stats = make_loader(_dataset_config(cfg.data, cfg.train.seed + 1, loop=False, shuffle=True), cfg.train.batch_size)
        batches = [b for _, b in zip(range(cfg.data.stats_batches), EncodedBatches(stats, tok, text_encoder))]
        if not batches:
            raise DataError(f"no clips of {cfg.data.frames} frames found in {cfg.data.shards}.")
        sample_latents = torch.cat([b["latents"].cpu() for b in batches])
        clip_fps = float(torch.cat([b["fps"] for b in batches]).median()) * tok.cfg.temporal_compression
        preview = {k: v[:4] for k, v in batches[0].items()}
    # 2. latent statistics (a resumed run loads its own from the checkpoint) and the generation settings
    if find_train_state(run_dir) is None or fresh:
        model.set_latent_stats(sample_latents)
    run_dir.mkdir(parents=True, exist_ok=True)
    generation = {"tokenizer": str(Path(cfg.data.tokenizer).resolve()), "frames": cfg.data.frames,
                  "size": cfg.data.size, "fps": cfg.data.fps or clip_fps}  # fmt: skip
    atomic_write_text(run_dir / GENERATION_FILE, json.dumps(generation, indent=2))
    # 3. train; every train.sample_every steps a Video2World preview (truth | generation) goes to samples/
    trainer = Trainer(model, cfg.train, run_dir, data, full_config=C.to_dict(cfg), model_config=cfg.model,
                      sample_fn=lambda m, step, out: write_preview(m, tok, preview, out, generation["fps"]),
                      resume=not fresh)  # fmt: skip
    result = trainer.fit()
    return {"run_dir": str(run_dir), "steps": result.step, "resumed_from": result.resumed_from,
            "already_complete": result.already_complete, "last": result.last_logs}  # fmt: skip
