"""Next-token prediction loss over raster-ordered video tokens: cross-entropy + z-loss.

``z-loss`` (PaLM, Chowdhery et al. 2022, arXiv 2204.02311, Sec. 5 "Training instability"): ``w * log(Z)^2`` with
``Z`` the softmax normaliser, which keeps the logits from drifting (``w = 1e-4``).
"""

from __future__ import annotations

import torch

from worldsmith.autoregressive.heads import cross_entropy_z_loss
from worldsmith.autoregressive.model import VideoGPT

__all__ = ["cross_entropy_z_loss", "next_token_loss", "shift_right"]


def shift_right(targets: torch.Tensor, bos: int) -> torch.Tensor:
    """Inputs (B, N) of targets (B, N): slot n reads token n - 1, slot 0 reads ``bos``."""
    return torch.cat([torch.full_like(targets[:, :1], bos), targets[:, :-1]], dim=1)


def next_token_loss(model: VideoGPT, batch: dict) -> tuple[torch.Tensor, dict]:
    """Teacher-forced loss on ``batch["tokens"]`` (B, T', H', W') int with optional ``text`` (B, L, text_dim) and
    ``text_mask`` (B, L) (rows with an all-False mask are unconditioned: they see the null token only)."""
    tokens = batch["tokens"]
    b, t, h, w = tokens.shape
    cfg = model.cfg
    if (h, w) != tuple(cfg.grid) or t > cfg.max_frames:
        raise ValueError(f"token grids {t}x{h}x{w} do not fit the model (at most {cfg.max_frames} frames of "
                         f"{cfg.grid})")
    targets = tokens.reshape(b, t * h * w).long()  # (B, N) in raster order (t, h, w)
    extras = {"actions": batch["actions"]} if "actions" in batch else None
    ctx = model.context(batch.get("text"), batch.get("text_mask"), batch=b, extras=extras)
    states = model(shift_right(targets, model.bos), ctx)  # (B, N, D)
    return model.head.loss(states, targets, cfg.z_loss)
