"""Exponential moving average of the trainable weights, kept as fp32 shadows beside the live model.

After optimizer step ``t`` (1-based) every shadow moves toward its weight: ``ema <- decay_t * ema + (1 - decay_t)
* w``. Buffers (e.g. norm statistics) are not averaged; the live ones are used with the EMA weights.

The shadows are plain tensors (DTensor shards under FSDP), not a second module: ``swapped_in(model)`` copies them
into the model for sampling or evaluation and restores the raw weights afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from worldsmith.train.train_config import TrainConfig


def ema_decay_at(step: int, cfg: TrainConfig) -> float:
    """EMA decay used after optimizer step ``step`` (1-based), capped at ``cfg.ema_decay``.

    * ``none``:   ``decay``
    * ``simple``: ``min(decay, (1 + t) / (10 + t))``: averages over roughly the steps seen so far early on;
    * ``power``:  ``min(decay, (1 - 1 / t) ** (gamma + 1))``: the power-function EMA of Karras et al. 2024
      ("Analyzing and Improving the Training Dynamics of Diffusion Models", eq. 2), whose averaging window grows
      in proportion to the training length; ``t = 1`` gives 0 (the EMA starts as a copy of the weights).
    """
    if cfg.ema_warmup == "simple":
        return min(cfg.ema_decay, (1.0 + step) / (10.0 + step))
    if cfg.ema_warmup == "power":
        return min(cfg.ema_decay, (1.0 - 1.0 / max(step, 1)) ** (cfg.ema_gamma + 1.0))
    return cfg.ema_decay


class EMA:
    """fp32 shadows of ``model``'s trainable parameters, keyed by parameter name."""

    def __init__(self, model: nn.Module, cfg: TrainConfig):
        self.cfg = cfg
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.shadow = {n: p.detach().to(torch.float32, copy=True) for n, p in self.params.items()}

    @torch.no_grad()
    def update(self, step: int) -> float:
        """Move every shadow toward its live weight with the decay of ``step``; returns that decay."""
        decay = ema_decay_at(step, self.cfg)
        for name, p in self.params.items():
            self.shadow[name].lerp_(p.detach().to(torch.float32), 1.0 - decay)
        return decay

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        unexpected = sorted(set(state) - set(self.shadow))
        if missing or unexpected:
            raise KeyError(f"EMA state does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for name, t in state.items():
            self.shadow[name].copy_(t)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Temporarily load the EMA weights into the live parameters (restored bit-exactly on exit)."""
        backup = {n: p.detach().clone() for n, p in self.params.items()}
        try:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(self.shadow[name])
            yield
        finally:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(backup[name])
