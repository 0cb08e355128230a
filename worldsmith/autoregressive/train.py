"""``worldsmith train autoregressive``: the GPT trained on token sets made by a discrete (DV) tokenizer.

A run's ``config.yaml`` has sections ``model`` (GPTConfig, from a preset; ``vocab_size`` and ``grid`` are set from
the token set), ``train`` (the shared TrainConfig), ``data`` (ARDataConfig) and ``tokenizer`` (the DV tokenizer
run, needed to tokenize clips and to decode generated tokens). Resolved as preset <- YAML <- ``--set`` <- flags and
run with the shared Trainer (DDP under torchrun). To resume, run the same command again.

Steps of ``train``: 1. decide the device; tokenize ``data.shards`` into the token set (rank 0, the others wait;
skipped when done); 2. load the token set and fit the model's vocabulary and grid to it; 3. train next-token
prediction on random windows of ``data.frames`` latent frames, a ``data.caption_dropout`` fraction of them without
their caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from worldsmith import config as C
from worldsmith.autoregressive.config import GPTConfig
from worldsmith.autoregressive.data import ARDataConfig, TokenBatches, load_token_set, tokenize_shards
from worldsmith.autoregressive.losses import next_token_loss
from worldsmith.autoregressive.model import VideoGPT
from worldsmith.conditioning.text import default_text_encoder
from worldsmith.errors import ConfigError
from worldsmith.nn.lora import is_adapter
from worldsmith.train.rng import seed_everything
from worldsmith.train.runtime import init_runtime, main_first
from worldsmith.train.train_config import TrainConfig
from worldsmith.train.trainer import Trainer
from worldsmith.weights import read_run_config
from worldsmith.zoo import resolve


def default_train_config() -> TrainConfig:
    return TrainConfig(steps=5000, batch_size=8, lr=1e-3, warmup_steps=200, weight_decay=0.1, betas=(0.9, 0.95),
                       ema_decay=0.999, log_every=25, ckpt_every=500)  # fmt: skip


@dataclass
class ARRunConfig:
    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    data: ARDataConfig = field(default_factory=ARDataConfig)
    tokenizer: str = ""  # DV tokenizer run directory
    init_from: str = ""  # a run (or shipped name) whose weights start this one: post-training (`worldsmith posttrain`)


def load_base(model: VideoGPT, run: str) -> None:
    """Start ``model`` from the weights of ``run``; only what post-training adds (the action embedder, LoRA
    adapters) may be missing there, and nothing may be left over."""
    missing, unexpected = model.load_state_dict(VideoGPT.from_pretrained(resolve(run)).state_dict(), strict=False)
    new = [k for k in missing if not (k.startswith("embedders.") or is_adapter(k))]
    if new or unexpected:
        raise ConfigError(f"the weights of {run} do not fit this model (missing {new[:3]}, unexpected {unexpected[:3]}); "
                          f"post-train from a run of the same architecture.")  # fmt: skip


def train(cfg: ARRunConfig, run_dir: str | Path, *, fresh: bool = False) -> dict[str, Any]:
    """Tokenize (if needed) and train (or resume) a VideoGPT into ``run_dir``; returns a summary."""
    run_dir = Path(run_dir)
    tokens_dir = Path(cfg.data.tokens) if cfg.data.tokens else run_dir / "tokens"
    runtime = init_runtime(cfg.train.device)
    # 1. tokenize the shards (rank 0 under torchrun; the others wait for it)
    if cfg.data.shards:
        if not cfg.tokenizer:
            raise ConfigError("data.shards needs a DV tokenizer run to tokenize them: pass --tokenizer RUN_DIR.")
        main_first(lambda: tokenize_shards(cfg.tokenizer, cfg.data.shards, tokens_dir, size=cfg.data.size,
                                           device=str(runtime.device), progress=cfg.train.progress,
                                           hysteresis=cfg.data.hysteresis))  # fmt: skip
    elif not cfg.data.tokens:
        raise ConfigError("no training data: pass --data SHARDS with --tokenizer RUN, or --tokens TOKEN_SET.")
    # 2. fit the model to the token set
    index, clips = load_token_set(tokens_dir)
    if not cfg.data.shards and float(index.get("hysteresis", 0.0)) != cfg.data.hysteresis:
        raise ConfigError(f"the token set {tokens_dir} was made with data.hysteresis={index.get('hysteresis', 0.0)}, "
                          f"not {cfg.data.hysteresis}; set it to match, or tokenize the shards again.")  # fmt: skip
    ct = int(index.get("temporal_compression", 1))
    action_dim = int(clips[0].actions.shape[-1]) if cfg.data.actions and clips[0].actions is not None else 0
    if cfg.data.actions and not action_dim:
        raise ConfigError(f"data.actions is on but the token set {tokens_dir} carries no actions; tokenize clips that "
                          f"have an actions array.")  # fmt: skip
    levels = read_run_config(resolve(cfg.tokenizer or index["tokenizer"]))["model"]["fsq_levels"]
    cfg = C.merge(cfg, {"model": {"vocab_size": int(index["vocab_size"]), "grid": list(index["grid"]),
                                  "action_dim": action_dim, "action_chunk": ct, "fsq_levels": list(levels)},
                        "data": {"tokens": str(tokens_dir.resolve()), "size": index["size"]},
                        "tokenizer": cfg.tokenizer or index["tokenizer"]})  # fmt: skip
    frames = cfg.data.frames or cfg.model.max_frames
    if frames > cfg.model.max_frames:
        raise ConfigError(f"data.frames ({frames}) must be <= model.max_frames ({cfg.model.max_frames}).")
    # 3. train
    text_encoder = None
    if cfg.data.caption_dropout < 1.0 and any(c.caption for c in clips):
        text_encoder = default_text_encoder(runtime.device)
    data = TokenBatches(clips, frames, cfg.train.batch_size, seed=cfg.train.seed,
                        caption_dropout=cfg.data.caption_dropout, text_encoder=text_encoder, rank=runtime.rank,
                        world=runtime.world_size, action_chunk=ct if action_dim else 0)  # fmt: skip
    seed_everything(cfg.train.seed)
    model = VideoGPT(cfg.model)
    if cfg.init_from:
        load_base(model, cfg.init_from)
    if action_dim:  # (a resumed run loads the checkpoint's scale over this)
        model.embedders[0].set_scale(torch.cat([c.actions for c in data.clips]))
    trainer = Trainer(model, next_token_loss, cfg.train, run_dir, data, full_config=C.to_dict(cfg),
                      resume=not fresh)  # fmt: skip
    result = trainer.fit()
    return {"run_dir": str(run_dir), "steps": result.step, "resumed_from": result.resumed_from,
            "already_complete": result.already_complete, "clips": len(data.clips),
            "last": result.last_logs}  # fmt: skip

