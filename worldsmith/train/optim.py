"""AdamW with weight decay only where it belongs.

Decay shrinks weights toward zero; on norm gains, biases and embedding tables that only hurts, so those go in
a no-decay group: every parameter with fewer than 2 dimensions, every ``nn.Embedding`` weight, and any name a
model lists in an optional ``no_weight_decay() -> set[str]`` method (parameter names as in
``named_parameters()``).
"""

from __future__ import annotations

import torch
from torch import nn

from worldsmith.train.train_config import TrainConfig


def split_decay(model: nn.Module) -> tuple[list[str], list[str]]:
    """(decayed names, not-decayed names) of the trainable parameters, in ``named_parameters()`` order."""
    no_decay: set[str] = set(getattr(model, "no_weight_decay", lambda: set())())
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Embedding):
            no_decay |= {f"{mod_name}.{n}" if mod_name else n for n, _ in mod.named_parameters(recurse=False)}
    decay, keep = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (keep if p.ndim < 2 or name in no_decay else decay).append(name)
    return decay, keep


def build_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters in two groups: decayed (``cfg.weight_decay``) and not (0)."""
    params = dict(model.named_parameters())
    decay, keep = split_decay(model)
    groups = [
        {"params": [params[n] for n in decay], "weight_decay": cfg.weight_decay},
        {"params": [params[n] for n in keep], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters.")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)
