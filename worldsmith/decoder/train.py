"""``worldsmith train decoder``: the diffusion decoder trained on (DV tokens, CV latents) pairs of the same clips.

Every clip crop is encoded once by both tokenizers into the latent cache (diffusion/data.py, ``data.token_tokenizer``)
and the diffusion family's training loop runs on it with the decoder's model class: the EDM loss over all latent
frames, conditioned on the tokens of the same frames. Resume = run the same command again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldsmith import config as C
from worldsmith.decoder.config import DecoderConfig
from worldsmith.decoder.model import DiffusionDecoder
from worldsmith.diffusion.data import DiffusionDataConfig
from worldsmith.diffusion.train import train as train_diffusion
from worldsmith.errors import ConfigError
from worldsmith.train.train_config import TrainConfig
from worldsmith.weights import read_run_config
from worldsmith.zoo import resolve


def default_train_config() -> TrainConfig:
    return TrainConfig(steps=3000, batch_size=16, lr=1e-3, warmup_steps=100, weight_decay=0.0, ema_decay=0.998,
                       log_every=25, ckpt_every=500)  # fmt: skip


def default_data_config() -> DiffusionDataConfig:
    return DiffusionDataConfig(frames=5, cache_latents=True, cache_crops=1)


@dataclass
class DecoderRunConfig:
    model: DecoderConfig = field(default_factory=DecoderConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    data: DiffusionDataConfig = field(default_factory=default_data_config)
    init_from: str = ""


def _tokenizer(run: str, kind: str, flag: str) -> dict[str, Any]:
    if not run:
        raise ConfigError(f"no {kind} tokenizer: pass {flag} with its run directory or shipped name.")
    model = read_run_config(resolve(run)).get("model") or {}
    if model.get("kind") != kind:
        raise ConfigError(f"{flag} {run} holds a {model.get('kind')} tokenizer; it must be {kind}.")
    return model


def fit_tokens(cfg: DecoderRunConfig) -> DecoderRunConfig:
    """The config with the DV tokenizer's FSQ levels, after checking the two tokenizers' grids fit each other."""
    dv = _tokenizer(cfg.data.token_tokenizer, "discrete", "--tokens")
    cv = _tokenizer(cfg.data.tokenizer, "continuous", "--latents")
    (dt, ds), (ct, cs) = ((m["temporal_compression"], m["spatial_compression"]) for m in (dv, cv))
    if ds % cs or dt != ct:
        raise ConfigError(f"the DV tokenizer's grid ({dt}x{ds}x{ds}) must have the continuous one's temporal "
                          f"compression ({ct}) and its spatial grid ({cs}x{cs}) or one coarser by a whole factor; "
                          f"pick tokenizers that fit.")  # fmt: skip
    return C.merge(cfg, {"model": {"token_levels": list(dv["fsq_levels"])}, "data": {"cache_latents": True}})


def train(cfg: DecoderRunConfig, run_dir: str | Path, *, fresh: bool = False) -> dict[str, Any]:
    """Train (or resume) a diffusion decoder into ``run_dir``; returns a summary with the last logs."""
    if not cfg.data.shards:
        raise ConfigError("no training data: pass --data with clip shards (e.g. from `worldsmith sim arm --out DIR`).")
    return train_diffusion(fit_tokens(cfg), run_dir, fresh=fresh, model_class=DiffusionDecoder)
