"""The diffusion world model's training objective: joint Text2World + Video2World EDM loss (Cosmos, Sec. 5.1).

Batches (data.py) hold tokenizer ``latents`` (B, C, T', H', W'), ``text`` (B, L, D_text) + ``text_mask`` (B, L),
optionally ``fps`` (B,) in latent frames per second, and the values of extra condition embedders by name.

Per sample: caption dropout (the text replaced by the "no text" token, so guidance has an unconditional branch),
and with probability ``video2world_prob`` a Video2World task: the first k in 1..max_cond_latents latent frames
become conditions, noise-augmented at a log-normal sigma_cond; the EDM loss covers the other frames only (edm.py).
"""

from __future__ import annotations

import torch

from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.edm import edm_loss, sample_sigma
from worldsmith.diffusion.model import DiffusionWorldModel, with_condition_frames

RESERVED = ("latents", "text", "text_mask", "fps")  # batch keys that are not extra conditions


def world_model_loss(model: DiffusionWorldModel, batch: dict) -> tuple[torch.Tensor, dict]:
    x0 = model.normalize(batch["latents"].float())  # (B, C, T', H', W')
    b, t = x0.shape[0], x0.shape[2]
    cfg = model.cfg
    # 1. caption dropout: some samples see the "no text" token instead of their caption
    text, mask = batch["text"].float(), batch["text_mask"].bool()
    drop = torch.rand(b, device=x0.device) < cfg.caption_dropout
    if bool(drop.any()):
        text = torch.where(drop[:, None, None], 0.0, text)
        mask = torch.where(drop[:, None], torch.arange(mask.shape[1], device=mask.device) == 0, mask)
    cond = Condition(text, mask, fps=batch.get("fps"), extras={k: v for k, v in batch.items() if k not in RESERVED})
    # 2. Video2World samples: condition on the first k latent frames, noise-augmented
    k = torch.zeros(b, dtype=torch.long, device=x0.device)
    if t > 1 and cfg.video2world_prob > 0:
        v2w = torch.rand(b, device=x0.device) < cfg.video2world_prob
        k = torch.where(v2w, torch.randint(1, min(cfg.max_cond_latents, t - 1) + 1, (b,), device=x0.device), 0)
    if bool((k > 0).any()):
        cond = with_condition_frames(cond, x0, k, sample_sigma(b, cfg.cond_sigma_mean, cfg.cond_sigma_std, x0.device))
    # 3. EDM loss over the generated frames (with ``residual``: their differences from the last given frame)
    keep = model.net.predicted_frames(cond, t)  # next-frame-only: the first generated frame; else None (all of them)
    loss, logs = edm_loss(model.denoiser, model.to_residual(x0, cond), cond, None if keep is None else keep.to(x0))
    return loss, logs | {"video2world": (k > 0).float().mean()}
