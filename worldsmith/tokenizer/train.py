"""Training a tokenizer: the run config and ``train(cfg, run_dir)`` on the shared Trainer.

A run's ``config.yaml`` has the sections ``model`` (TokenizerConfig, from a preset), ``loss``
(TokenizerLossConfig), ``train`` (the shared TrainConfig), ``data`` (TokenizerDataConfig) and ``init_from``; it is
resolved as preset <- YAML <- ``--set`` <- flags (``Family.resolve``). To resume, run the same command again.
``init_from`` starts from another run's weights, e.g. the adversarial fine-tuning stage::

    worldsmith train tokenizer --init-from RUN --set loss.adversarial=0.1 --data SHARDS --out RUN-GAN
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldsmith.config import load_yaml, to_dict
from worldsmith.data.dataset import DatasetConfig, make_loader
from worldsmith.errors import CheckpointError, ConfigError
from worldsmith.tokenizer.config import TokenizerConfig
from worldsmith.tokenizer.evaluation import evaluate_batches, shard_batches, write_comparison
from worldsmith.tokenizer.losses import TokenizerLoss, TokenizerLossConfig
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.train.checkpoint import find_train_state
from worldsmith.train.rng import seed_everything
from worldsmith.train.runtime import init_runtime
from worldsmith.train.train_config import TrainConfig
from worldsmith.train.trainer import Trainer
from worldsmith.weights import CONFIG, WEIGHTS, load_into, load_tensors, read_run_config
from worldsmith.zoo import resolve


@dataclass
class TokenizerDataConfig:
    shards: str = ""  # training clips: a shard directory, glob, .tar or manifest.parquet
    frames: int = 17  # frames per training clip; must be 1 + k * temporal_compression
    size: int = 64  # frames are resized (short side) and centre-cropped to size x size
    fps: float | None = None  # resample clips to this rate; None keeps each clip's own
    num_workers: int = 0  # data loader processes
    cache_mb: int = 1024  # keep decoded training clips in memory up to this many MB (per loader process); 0: off
    eval_shards: str = ""  # held-out clips scored every train.eval_every steps (PSNR, SSIM)
    eval_clips: int = 8

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 8 or self.num_workers < 0 or self.eval_clips < 1 or self.cache_mb < 0:
            raise ConfigError("data.frames >= 1, data.size >= 8, data.num_workers >= 0, data.eval_clips >= 1 and "
                              "data.cache_mb >= 0 are required.")  # fmt: skip


def default_train_config() -> TrainConfig:
    return TrainConfig(steps=5000, batch_size=4, lr=5e-4, warmup_steps=100, weight_decay=0.0, ema_decay=0.998,
                       log_every=25, ckpt_every=500)  # fmt: skip


@dataclass
class TokenizerRunConfig:
    model: TokenizerConfig = field(default_factory=TokenizerConfig)
    loss: TokenizerLossConfig = field(default_factory=TokenizerLossConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    data: TokenizerDataConfig = field(default_factory=TokenizerDataConfig)
    init_from: str = ""  # run directory whose model.safetensors initializes this run (fine-tuning stages)

    def __post_init__(self) -> None:
        """The checks that span sections: clip length and sizes must fit the model's compression."""
        ct, cs = self.model.temporal_compression, self.model.spatial_compression
        if (self.data.frames - 1) % ct:
            raise ConfigError(f"data.frames must be 1 + k*{ct} for the {self.model.name} tokenizer (e.g. "
                              f"{1 + 4 * ct}), got {self.data.frames}.")  # fmt: skip
        if self.data.size % cs:
            raise ConfigError(f"data.size must be a multiple of the spatial compression {cs}, got {self.data.size}.")
        if self.loss.crop % cs:
            raise ConfigError(f"loss.crop must be a multiple of the spatial compression {cs}, got {self.loss.crop}.")


def training_clips(data: TokenizerDataConfig, seed: int) -> DatasetConfig:
    """Random ``data.frames``-frame windows of the training shards, shuffled, looping, cached in memory."""
    return DatasetConfig(shards=data.shards, frames=data.frames, fps=data.fps, size=(data.size, data.size),
                         temporal_crop="random", shuffle=True, seed=seed, loop=True, arrays=[], drop_short=True,
                         cache_mb=data.cache_mb)  # fmt: skip


def load_init_weights(model: CausalVideoTokenizer, run_dir: str | Path) -> None:
    """Copy the tokenizer weights of another run or a shipped tokenizer (any layout, see
    ``CausalVideoTokenizer.upgrade``) into ``model``."""
    run_dir = resolve(run_dir)
    config = read_run_config(run_dir)
    _, state = CausalVideoTokenizer.upgrade(dict(config.get("model") or {}), load_tensors(Path(run_dir) / WEIGHTS),
                                            run_dir)  # fmt: skip
    try:
        load_into(model, state, run_dir)
    except CheckpointError:
        raise CheckpointError(f"the weights in {run_dir} do not fit this tokenizer; --init-from needs a run of the "
                              f"same architecture (compare the model sections of the two config.yaml files).") from None


def refuse_old_layout(run_dir: Path) -> None:
    """A run written when the loss lived in ``model.loss`` cannot be continued in place: say how to go on."""
    path = run_dir / CONFIG
    if find_train_state(run_dir) is not None and path.is_file() and "loss" in (load_yaml(path).get("model") or {}):
        raise ConfigError(f"{run_dir} was trained by an older worldsmith (its config.yaml has model.loss); continue "
                          f"from its weights in a new run with --init-from {run_dir}, or start over with --fresh.")


def train(cfg: TokenizerRunConfig, run_dir: str | Path, *, fresh: bool = False) -> dict[str, Any]:
    """Train (or resume) a tokenizer into ``run_dir``; returns a summary with the last logged metrics."""
    run_dir = Path(run_dir)
    if not cfg.data.shards:
        raise ConfigError("no training data: pass --data with a shard directory (e.g. `worldsmith sim arm --out DIR`).")
    if not fresh:
        refuse_old_layout(run_dir)
    # 1. the process's device (and process group under torchrun), decided once
    runtime = init_runtime(cfg.train.device)
    seed_everything(cfg.train.seed)
    # 2. the tokenizer and its objective (which owns the discriminator and the frozen perceptual net)
    model = CausalVideoTokenizer(cfg.model)
    if cfg.init_from:
        load_init_weights(model, cfg.init_from)
    loss = TokenizerLoss(cfg.loss)
    model.to(runtime.device)
    loss.to(runtime.device)
    # 3. data and hooks
    loader = make_loader(training_clips(cfg.data, cfg.train.seed), cfg.train.batch_size, cfg.data.num_workers)
    data = cfg.data

    def eval_fn(m: CausalVideoTokenizer, step: int) -> dict[str, float]:
        batches = shard_batches(data.eval_shards, data.frames, data.size, data.eval_clips, fps=data.fps)
        scores = evaluate_batches(m, batches, features=False)
        return {"psnr": scores["psnr"], "ssim": scores["ssim"]}

    def sample_fn(m: CausalVideoTokenizer, step: int, out_dir: Path) -> dict[str, float]:
        shards = data.eval_shards or data.shards
        batch = next(iter(shard_batches(shards, data.frames, data.size, 4, batch_size=4, fps=data.fps)))
        x = batch["video"].to(runtime.device)
        write_comparison(x, m.decode(m.encode(x)), out_dir / "recon.mp4", batch["fps"])
        return {}

    # 4. train
    trainer = Trainer(model, loss, cfg.train, run_dir, loader, full_config=to_dict(cfg), sample_fn=sample_fn,
                      eval_fn=eval_fn if data.eval_shards else None, resume=not fresh)  # fmt: skip
    result = trainer.fit()
    return {"run_dir": str(run_dir), "steps": result.step, "resumed_from": result.resumed_from,
            "already_complete": result.already_complete, "last": result.last_logs}  # fmt: skip
