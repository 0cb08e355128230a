"""``DiffusionWorldModel``: the DiT wrapped by EDM, trained jointly on Text2World and Video2World.

Batches (from pipeline.py) hold tokenizer ``latents`` (B, C, T', H', W'), ``text`` (B, L, D_text) + ``text_mask``
(B, L), optionally ``fps`` (B,) in latent frames per second and the values of extra condition embedders by name.
Latents are normalised per channel with statistics measured on the training data (buffers saved with the
weights) to the standard deviation ``sigma_data`` that EDM assumes.

Training draws, per sample: caption dropout (the text replaced by the "no text" token), and with probability
``video2world_prob`` a Video2World task: the first k in 1..max_cond_latents latent frames become conditions,
noise-augmented at a log-normal sigma_cond; the loss covers the other frames only (edm.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from worldsmith.diffusion.condition import Condition, null_text
from worldsmith.diffusion.dit import DiT
from worldsmith.diffusion.edm import EDMDenoiser, edm_loss, sample_sigma
from worldsmith.diffusion.presets import WorldModelConfig
from worldsmith.diffusion.samplers import sample

RESERVED = ("latents", "text", "text_mask", "fps")


class DiffusionWorldModel(nn.Module):
    Config = WorldModelConfig

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.denoiser = EDMDenoiser(DiT(cfg.dit, self.make_embedders(cfg)), cfg.edm)
        c = cfg.dit.latent_channels
        self.register_buffer("latent_mean", torch.zeros(c))  # per-channel statistics of the training latents
        self.register_buffer("latent_std", torch.ones(c))

    def make_embedders(self, cfg: WorldModelConfig) -> list[nn.Module]:
        """The extra-condition slot: a subclass returns its embedders (actions, camera ...) built from ``cfg``."""
        return []

    @property
    def net(self) -> DiT:
        return self.denoiser.net

    # -- latent scaling ---------------------------------------------------------------------------------------
    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)
        return self.latent_mean.view(shape).to(z), self.latent_std.view(shape).to(z)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Tokenizer latents (B, C, T', H', W') -> model space (std sigma_data)."""
        mean, std = self._stats(z)
        return (z - mean) / std * self.cfg.edm.sigma_data

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x / self.cfg.edm.sigma_data * std + mean

    @torch.no_grad()
    def set_latent_stats(self, latents: torch.Tensor) -> None:
        """Measure per-channel mean and std on tokenizer latents (N, C, T', H', W')."""
        flat = latents.transpose(0, 1).reshape(latents.shape[1], -1).float()
        self.latent_mean.copy_(flat.mean(1))
        self.latent_std.copy_(flat.std(1).clamp_min(1e-4))

    # -- training ---------------------------------------------------------------------------------------------
    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        x0 = self.normalize(batch["latents"].float())  # (B, C, T', H', W')
        b, t = x0.shape[0], x0.shape[2]
        cfg = self.cfg
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
        # 3. EDM loss over the generated frames
        loss, logs = edm_loss(self.denoiser, x0, cond)
        return loss, logs | {"video2world": (k > 0).float().mean()}

    def checkpoint_modules(self) -> list[nn.Module]:
        return list(self.net.blocks)

    def no_weight_decay(self) -> list[str]:
        return [f"denoiser.net.{n}" for n in self.net.no_weight_decay()]

    # -- generation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, cond: Condition, shape: tuple[int, int, int], *, steps: int = 10, guidance: float = 1.0,
        uncond: Condition | None = None, sampler: str = "dpm++2m", generator: torch.Generator | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Model-space latents (B, C, T', H', W') for a (T', H', W') grid; Video2World when ``cond.mask`` is set."""
        b, dev = cond.batch, cond.text.device
        noise = torch.randn((b, self.cfg.dit.latent_channels, *shape), generator=generator, device=dev)
        edm = self.cfg.edm
        return sample(self.denoiser, noise, cond, steps=steps, guidance=guidance, uncond=uncond, sampler=sampler,
                      sigma_min=edm.sigma_min, sigma_max=edm.sigma_max, rho=edm.rho)  # fmt: skip

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, device: str | torch.device = "cpu", ema: bool = True):
        from worldsmith.train.checkpoint import load_pretrained

        return load_pretrained(cls, run_dir, ema=ema, device=device)

    def save_pretrained(self, run_dir: str | Path) -> Path:
        from worldsmith.train.checkpoint import save_pretrained

        return save_pretrained(self, self.cfg, run_dir)


def with_condition_frames(
    cond: Condition, x0: torch.Tensor, k: torch.Tensor, sigma_cond: torch.Tensor, noise: torch.Tensor | None = None
) -> Condition:  # fmt: skip
    """``cond`` plus Video2World conditions: the first k[b] latent frames of x0 (B, C, T', H', W') are given,
    seen by the network as ``x0 + sigma_cond * noise``."""
    b, t = x0.shape[0], x0.shape[2]
    mask = (torch.arange(t, device=x0.device)[None] < k.view(b, 1)).to(x0.dtype).view(b, 1, t, 1, 1)
    noise = torch.randn_like(x0) if noise is None else noise
    frames_in = x0 + sigma_cond.view(b, 1, 1, 1, 1).to(x0) * noise
    return Condition(cond.text, cond.text_mask, cond.fps, mask, x0, frames_in, sigma_cond.to(x0), cond.extras)


def text_condition(text: torch.Tensor | None, text_mask: torch.Tensor | None, batch: int, dim: int,
                   device: torch.device | str, fps: torch.Tensor | None = None) -> Condition:  # fmt: skip
    """A Text2World condition; ``text=None`` gives the "no text" condition."""
    if text is None:
        text, text_mask = null_text(batch, dim, device)
    return Condition(text.to(device), text_mask.to(device), fps=fps)
