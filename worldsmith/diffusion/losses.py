"""The diffusion world model's training objective: joint Text2World + Video2World EDM loss (Cosmos, Sec. 5.1).

Batches (data.py) hold tokenizer ``latents`` (B, C, T', H', W'), ``text`` (B, L, D_text) + ``text_mask`` (B, L),
optionally ``fps`` (B,) in latent frames per second, and the values of extra condition embedders by name.

Per sample: caption dropout (the text replaced by the "no text" token, so guidance has an unconditional branch),
and with probability ``video2world_prob`` a Video2World task: the first k in 1..max_cond_latents latent frames
become conditions, noise-augmented at a log-normal sigma_cond; the EDM loss covers the other frames only (edm.py).

Rollout training (``model.rollout_depth`` D > 0, next-frame-only models): a rollout feeds the model its own frames,
whose errors compound (an arm rollout's gripper error grows five-fold over 16 frames while one step from the true
frames stays flat). Each batch then holds windows of m + D latent frames (m: the model's window). Per batch a depth
d in 0..D is drawn; the model predicts d frames one after the other from the true first m - 1 (``rollout_steps``
Euler steps, 1 by default; no gradient), and the loss is the usual one on the window that starts at frame d: its
m - 1 given frames are (partly) the model's own, its target is the true frame. The model so learns to correct its
own drift, as self-forcing and the context-corruption remedies of GameNGen and DIAMOND aim to, on exactly the errors
it makes. Cameras and ego states are cut to each window with it (``window_batch``), so any condition trains this way.
"""

from __future__ import annotations

import torch

from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.edm import edm_loss, generated_frames, sample_sigma
from worldsmith.diffusion.model import DiffusionWorldModel, with_condition_frames
from worldsmith.errors import ConfigError

RESERVED = ("latents", "text", "text_mask", "fps")  # batch keys that are not extra conditions


def extras_of(model: DiffusionWorldModel, batch: dict) -> dict:
    """The extra conditions of a batch, by embedder name; a rollout origin's latent frame normalised as the
    latents are (the generator hands it over in model space)."""
    extras = {k: v for k, v in batch.items() if k not in RESERVED}
    if "origin" in extras:
        extras["origin"] = model.normalize(extras["origin"].float()[:, :, None])[:, :, 0]
    if "warped" in extras:
        extras["warped"] = model.normalize(extras["warped"].float())
    return extras


def world_model_loss(model: DiffusionWorldModel, batch: dict, given: int = 0) -> tuple[torch.Tensor, dict]:
    """The joint loss of a batch; ``given`` > 0: every sample is Video2World on exactly that many given frames."""
    x0 = model.normalize(batch["latents"].float())  # (B, C, T', H', W')
    b, t = x0.shape[0], x0.shape[2]
    cfg = model.cfg
    # 1. caption dropout: some samples see the "no text" token instead of their caption
    text, mask = batch["text"].float(), batch["text_mask"].bool()
    drop = torch.rand(b, device=x0.device) < cfg.caption_dropout
    if bool(drop.any()):
        text = torch.where(drop[:, None, None], 0.0, text)
        mask = torch.where(drop[:, None], torch.arange(mask.shape[1], device=mask.device) == 0, mask)
    cond = Condition(text, mask, fps=batch.get("fps"), extras=extras_of(model, batch))
    # 2. Video2World samples: condition on the first k latent frames, noise-augmented
    k = torch.zeros(b, dtype=torch.long, device=x0.device)
    if t > 1 and cfg.video2world_prob > 0:
        v2w = torch.rand(b, device=x0.device) < cfg.video2world_prob
        k = torch.where(v2w, torch.randint(1, min(cfg.max_cond_latents, t - 1) + 1, (b,), device=x0.device), 0)
    if given:
        k = torch.full((b,), given, dtype=torch.long, device=x0.device)
    if bool((k > 0).any()):
        cond = with_condition_frames(cond, x0, k, sample_sigma(b, cfg.cond_sigma_mean, cfg.cond_sigma_std, x0.device))
    # 3. EDM loss over the generated frames (with ``residual``: their differences from the last given frame)
    keep = model.net.predicted_frames(cond, t)  # next-frame-only: the first generated frame; else None (all of them)
    keep = keep.to(x0) if keep is not None else generated_frames(x0, cond)
    where = motion_weights(x0, keep, cfg.motion_weight) if cfg.motion_weight > 0 else None
    loss, logs = edm_loss(model.denoiser, model.to_residual(x0, cond), cond, keep, where)
    return loss, logs | {"video2world": (k > 0).float().mean()}


def motion_weights(x0: torch.Tensor, keep: torch.Tensor, strength: float) -> torch.Tensor:
    """Loss weights (B, 1, T', H', W') of latents x0 (B, C, T', H', W') for ``model.motion_weight``: at each position
    of a frame, ``1 + strength * change / mean change``, change = the channel mean of |frame - frame before| (0 for
    the first frame) and the mean over the positions of the frames ``keep`` (B, 1, T', 1, 1) marks; then divided by
    its mean over those positions, so a sample's loss keeps its scale and only its spread over the frame moves."""
    change = (x0[:, :, 1:] - x0[:, :, :-1]).abs().mean(dim=1, keepdim=True)  # (B, 1, T'-1, H', W')
    change = torch.cat([torch.zeros_like(change[:, :, :1]), change], dim=2)  # (B, 1, T', H', W')
    keep = keep.expand(-1, -1, -1, *change.shape[-2:])
    count = keep.sum(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1)
    mean = (change * keep).sum(dim=(1, 2, 3, 4), keepdim=True) / count
    where = 1 + strength * change / mean.clamp_min(1e-6)
    return where / ((where * keep).sum(dim=(1, 2, 3, 4), keepdim=True) / count)


def rollout_world_model_loss(model: DiffusionWorldModel, batch: dict) -> tuple[torch.Tensor, dict]:
    """``world_model_loss`` on a window whose given frames the model generated itself, ``d`` ~ U{0..rollout_depth}
    steps deep (d = 0: the true frames, as without rollout training); see the module docstring."""
    depth, chunk = model.cfg.rollout_depth, model.cfg.action_chunk
    latents = batch["latents"].float()  # (B, C, m + D, H', W')
    m = latents.shape[2] - depth
    if m < 2:
        raise ConfigError(f"rollout training needs windows of the model's window + {depth} latent frames; these hold "
                          f"{latents.shape[2]}: raise data.window.")  # fmt: skip
    d = int(torch.randint(0, depth + 1, ()))
    frames = list(latents.unbind(2))
    for s in range(d):  # frame s + m - 1 from the m - 1 frames before it (own ones from s = 1 on)
        frames[s + m - 1] = next_frame(model, window_batch(batch, torch.stack(frames[s : s + m], 2), s, chunk))
    window = window_batch(batch, torch.stack(frames[d : d + m], 2), d, chunk)
    loss, logs = world_model_loss(model, window, given=m - 1 if d else 0)
    return loss, logs | {"rollout_depth": torch.tensor(float(d))}


def window_batch(batch: dict, latents: torch.Tensor, start: int, chunk: int) -> dict:
    """``batch`` cut to the window of ``latents`` (B, C, m, H', W') that starts at latent frame ``start``: the
    actions leading into its frames 1..m-1 (``chunk`` per latent frame), the travel and cameras of its frames, the
    ego states of the video frames it covers (``chunk``: video frames per latent frame)."""
    out, m = dict(batch, latents=latents), latents.shape[2]
    for name in ("travel", "camera", "tip"):  # one per latent frame
        if name in batch:
            out[name] = batch[name][:, start : start + m]
    if "warped" in batch:  # (B, C, T', H', W')
        out["warped"] = batch["warped"][:, :, start : start + m]
    if "trajectory" in batch:
        out["trajectory"] = batch["trajectory"][:, start * chunk : (start + m - 1) * chunk + 1]
    if "actions" in batch:
        out["actions"] = batch["actions"][:, start * chunk : (start + m - 1) * chunk]
    return out


@torch.no_grad()
def next_frame(model: DiffusionWorldModel, batch: dict) -> torch.Tensor:
    """The model's prediction (B, C, H', W') of the last latent frame of ``batch``'s window from the frames before
    it, with ``model.cfg.rollout_steps`` Euler steps, as a rollout makes it (its context noise-augmented at
    ``cond_sigma``)."""
    x = model.normalize(batch["latents"].float())
    b = x.shape[0]
    cond = Condition(batch["text"].float(), batch["text_mask"].bool(), fps=batch.get("fps"), extras=extras_of(model, batch))
    given = torch.full((b,), x.shape[2] - 1, dtype=torch.long, device=x.device)
    cond = with_condition_frames(cond, x, given, torch.full((b,), model.cfg.cond_sigma, device=x.device))
    new = model.generate(cond, tuple(x.shape[2:]), steps=model.cfg.rollout_steps, sampler="euler")[:, :, -1:]
    return model.denormalize(new)[:, :, 0]
